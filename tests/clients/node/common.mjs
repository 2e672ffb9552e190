// What every client script shares: its settings from the environment, and one JSON result line.
export const settings = {
  baseURL: process.env.ASTRA_BASE_URL, // the SDK's base URL on the sidecar
  model: process.env.ASTRA_MODEL ?? "any-model",
  apiKey: process.env.ASTRA_API_KEY ?? "sk-node-client",
};

export const weatherSchema = {
  type: "object",
  properties: { city: { type: "string" } },
  required: ["city"],
  additionalProperties: false,
};

export function weather(city) {
  return `sunny in ${city}`;
}

// Runs the scenario named by the first argument; prints {"ok": true, ...result} or the error.
export async function main(scenarios) {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) {
    console.log(JSON.stringify({ ok: false, error: `unknown scenario ${name}` }));
    process.exit(2);
  }
  try {
    const result = await scenario();
    console.log(JSON.stringify({ ok: true, ...result }));
  } catch (error) {
    const status = error?.status ?? error?.statusCode ?? null;
    console.log(JSON.stringify({ ok: false, status, error: String(error?.message ?? error) }));
    process.exit(1);
  }
}
