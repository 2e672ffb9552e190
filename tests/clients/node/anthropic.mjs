// The official `@anthropic-ai/sdk` on the sidecar's Anthropic route: Messages plain, streamed and
// a tool round trip. ASTRA_BASE_URL is /v1/anthropic/{agent} (the SDK adds /v1/messages).
import Anthropic from "@anthropic-ai/sdk";
import { main, settings, weather, weatherSchema } from "./common.mjs";

const client = new Anthropic({ baseURL: settings.baseURL, apiKey: settings.apiKey, maxRetries: 0 });
const tools = [{ name: "get_weather", description: "Weather for a city", input_schema: weatherSchema }];
const text = (message) => message.content.filter((b) => b.type === "text").map((b) => b.text).join("");

await main({
  async "messages-plain"() {
    const message = await client.messages.create({
      model: settings.model, max_tokens: 256, messages: [{ role: "user", content: "Capital of France?" }],
    });
    return { text: text(message), stop: message.stop_reason, outputTokens: message.usage.output_tokens };
  },
  async "messages-stream"() {
    const stream = client.messages.stream({
      model: settings.model, max_tokens: 256, messages: [{ role: "user", content: "Capital of Italy?" }],
    });
    const events = [];
    stream.on("streamEvent", (event) => events.push(event.type));
    const message = await stream.finalMessage();
    return { text: text(message), events, stop: message.stop_reason };
  },
  async "messages-tool"() {
    const messages = [{ role: "user", content: "Weather in Oslo?" }];
    const first = await client.messages.create({ model: settings.model, max_tokens: 256, messages, tools });
    const uses = first.content.filter((b) => b.type === "tool_use");
    messages.push({ role: "assistant", content: first.content });
    messages.push({
      role: "user",
      content: uses.map((u) => ({ type: "tool_result", tool_use_id: u.id, content: weather(u.input.city) })),
    });
    const second = await client.messages.create({ model: settings.model, max_tokens: 256, messages, tools });
    return { calls: uses.map((u) => ({ name: u.name, input: u.input })), stop: first.stop_reason, text: text(second) };
  },
});
