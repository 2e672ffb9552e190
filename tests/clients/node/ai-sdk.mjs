// The Vercel AI SDK (`ai`) with `@ai-sdk/openai` (its default provider speaks the Responses API)
// or `@ai-sdk/anthropic`: generateText, streamText, and a tool it runs itself (two steps).
// ASTRA_PROVIDER picks the provider; ASTRA_BASE_URL is its base URL on the sidecar.
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";
import { main, settings, weather } from "./common.mjs";

const options = { baseURL: settings.baseURL, apiKey: settings.apiKey };
const provider = process.env.ASTRA_PROVIDER === "anthropic" ? createAnthropic(options) : createOpenAI(options);
const model = provider(settings.model);
const calls = [];
const getWeather = tool({
  description: "Weather for a city",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => {
    calls.push(city);
    return weather(city);
  },
});

await main({
  async generate() {
    const result = await generateText({ model, prompt: "Capital of France?", maxRetries: 0 });
    return { text: result.text, finish: result.finishReason, outputTokens: result.usage.outputTokens };
  },
  async stream() {
    const result = streamText({ model, prompt: "Capital of Italy?", maxRetries: 0 });
    const parts = [];
    for await (const part of result.textStream) parts.push(part);
    return { text: parts.join(""), finish: await result.finishReason, outputTokens: (await result.usage).outputTokens };
  },
  async tool() {
    const result = await generateText({
      model, prompt: "Weather in Oslo?", tools: { get_weather: getWeather }, stopWhen: stepCountIs(3), maxRetries: 0,
    });
    return { text: result.text, calls, steps: result.steps.length };
  },
});
