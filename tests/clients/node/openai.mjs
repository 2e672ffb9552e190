// The official `openai` Node SDK on the sidecar: Responses (plain, streamed, a tool round trip)
// and Chat Completions. ASTRA_BASE_URL is the sidecar's /v1.
import OpenAI from "openai";
import { main, settings, weather, weatherSchema } from "./common.mjs";

const client = new OpenAI({ baseURL: settings.baseURL, apiKey: settings.apiKey, maxRetries: 0 });
const tools = [{ type: "function", name: "get_weather", description: "Weather for a city", parameters: weatherSchema, strict: true }];

await main({
  async "responses-plain"() {
    const response = await client.responses.create({ model: settings.model, input: "Capital of France?" });
    return { text: response.output_text, status: response.status, outputTokens: response.usage?.output_tokens };
  },
  async "responses-stream"() {
    const stream = await client.responses.create({ model: settings.model, input: "Capital of Italy?", stream: true });
    const types = [];
    const sequence = [];
    let text = "";
    let final = null;
    for await (const event of stream) {
      types.push(event.type);
      sequence.push(event.sequence_number);
      if (event.type === "response.output_text.delta") text += event.delta;
      if (event.type === "response.completed") final = event.response;
    }
    return { text, types, sequence, finalStatus: final?.status, outputTokens: final?.usage?.output_tokens };
  },
  async "responses-tool"() {
    const input = [{ role: "user", content: "Weather in Oslo?" }];
    const first = await client.responses.create({ model: settings.model, input, tools });
    const calls = first.output.filter((item) => item.type === "function_call");
    for (const call of calls) {
      const { city } = JSON.parse(call.arguments);
      input.push(call, { type: "function_call_output", call_id: call.call_id, output: weather(city) });
    }
    const second = await client.responses.create({ model: settings.model, input, tools });
    return { calls: calls.map((c) => ({ name: c.name, arguments: JSON.parse(c.arguments) })), text: second.output_text };
  },
  async chat() {
    const completion = await client.chat.completions.create({
      model: settings.model,
      messages: [{ role: "user", content: "Capital of Spain?" }],
    });
    return { text: completion.choices[0].message.content, finish: completion.choices[0].finish_reason };
  },
});
