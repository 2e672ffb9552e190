"""AWS Bedrock Runtime adapter: OpenAI Chat Completions ⇄ Converse / ConverseStream.

Wire format: botocore's `bedrock-runtime` service model (protocol rest-json), boto/botocore
`botocore/data/bedrock-runtime/2023-09-30/service-2.json`. Quirks this module handles:

- URL: `POST {base}/model/{modelId}/converse` (or `/converse-stream`); the model id is
  percent-encoded (`:` → `%3A`, `/` → `%2F`) exactly as botocore's serializer does. The I/O layer
  must send that path unchanged (aiohttp: `yarl.URL(url, encoded=True)`; a plain string URL is
  re-normalised by yarl, `%3A` → `:`, and the signature no longer matches).
- SigV4 is done by botocore's own signer (`SigV4Auth`) with signing name `bedrock` (not
  `bedrock-runtime`); it encodes the already-encoded path again for the canonical request
  (`%3A` → `%253A`) and signs the SHA-256 of the exact body bytes. Bedrock API keys
  (`AuthMaterial.token`) are sent as `Authorization: Bearer` instead and take precedence, as in
  botocore.
- Region: `cluster.region`, else parsed from a `bedrock-runtime[-fips].{region}.amazonaws.com`
  base URL; `base_url` "" means the regional AWS endpoint (see `astra_sidecar.sidecar.auth.aws`).
- Messages: system/developer messages go to top-level `system` blocks; content blocks are a
  union (exactly one key each); image parts must be `data:` URLs (Bedrock cannot fetch http
  URLs → 400); tool messages become `toolResult` blocks in a user turn; consecutive messages of
  one role are merged (which also merges consecutive tool results into one user message);
  empty text blocks and messages left empty are dropped. Tool-call `arguments` (a JSON string)
  become a `toolUse.input` object: "" means `{}`, anything that is not a JSON object is a 400.
- `toolChoice` has no `none`: it is omitted, and so are the tools, unless the history holds
  tool blocks, in which case Bedrock requires `toolConfig` and the tools are kept (tools named in
  the history are stubbed when the request has none). `allowed_tools` narrows the tool list.
  `function.strict` is not forwarded (several Bedrock models reject it).
- Prompt caching: `cachePoint` after the system blocks / after the tools when the agent marks
  them cacheable.
- JSON mode: `response_format.json_schema` maps faithfully to `outputConfig.textFormat`
  (schema serialised as a **string**; newer models only — others answer 400). `json_object` has
  no faithful Converse equivalent and is not forwarded (OpenAI requires the prompt to ask for
  JSON anyway). `n` > 1 is rejected; `seed`, penalties, logprobs, `user` and
  `parallel_tool_calls` are not forwarded; `reasoning_effort` → the model family's reasoning
  switch (`reasoning`).
- Temperature is clamped to [0, 1]; max tokens = `max_completion_tokens` ?? `max_tokens` ?? the
  agent's `max_output_tokens`.
- Usage: `inputTokens` excludes the cache buckets, so prompt = input + cacheRead + cacheWrite,
  cached = cacheRead, `prompt_tokens_details.cache_write_tokens` = cacheWrite (when non-zero);
  totals are recomputed. Reasoning blocks are not surfaced.
- Streaming is the binary `application/vnd.amazon.eventstream` body, decoded by botocore's
  `EventStreamBuffer` (frames may straddle reads; CRCs are checked). Text blocks may arrive
  without `contentBlockStart`. `metadata` (usage) arrives after `messageStop`: the finish chunk
  is sent at `messageStop`, the usage chunk (only with `stream_options.include_usage`) at
  `metadata`. A tool block that streamed no input gets `"{}"` as its arguments, as the plain
  answer would. Exception frames (`:message-type: exception`) and error frames become
  `UpstreamStreamError`; chunks decoded in the same read are returned first and the error is
  raised on the next call. EOF before `messageStop` (or inside a frame) is a cut.
- Errors: the name comes from `x-amzn-ErrorType` (text after `:` dropped), else body
  `__type` (after `#`) or `code`; classification uses only the name, the status and structured
  fields (`originalStatusCode`), never message text.

Modules: `request` (Converse body), `messages` (messages and content blocks), `signing` (URL,
region, SigV4), `response` (whole answer → OpenAI), `stream` (event-stream translator), `errors`
(failure classification), `adapter` (`BedrockAdapter`).
"""

from __future__ import annotations

from astra_sidecar.sidecar.protocols.bedrock.adapter import BedrockAdapter
from astra_sidecar.sidecar.protocols.bedrock.signing import cluster_region
from astra_sidecar.sidecar.protocols.bedrock.stream import BedrockStreamTranslator

__all__ = ["BedrockAdapter", "BedrockStreamTranslator", "cluster_region"]
