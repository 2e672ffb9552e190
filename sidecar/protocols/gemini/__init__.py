"""Google Gemini: AI Studio (Gemini Developer API) and Vertex AI, plain and streamed.

Both surfaces speak the same JSON (`GenerateContentRequest` / `GenerateContentResponse`); they
differ only in URL and auth:

- AI Studio: ``{base_url}/v1beta/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse``
  when streaming), header ``x-goog-api-key``.
- Vertex AI (``cluster.vertex`` set): ``https://{location}-aiplatform.googleapis.com/v1/projects/
  {project}/locations/{location}/publishers/google/models/{model}:…`` (``global`` →
  ``aiplatform.googleapis.com``, ``us``/``eu`` → ``aiplatform.{loc}.rep.googleapis.com``), header
  ``Authorization: Bearer <OAuth token>``. A cluster base URL other than the AI Studio default
  replaces the host (proxies, private endpoints, tests).

Quirks handled (Google's reference: https://ai.google.dev/api/generate-content):

- Roles are only ``user``/``model``; system and developer messages are hoisted into
  ``systemInstruction``; consecutive same-role turns are merged (a model turn's text and its
  function calls become one turn), except that a turn of function responses is never merged
  with a plain user turn.
- Tool calls: OpenAI ``arguments`` is a JSON string, Gemini ``args`` an object (invalid JSON or a
  non-object in the history → 400). ``functionResponse`` needs the function *name*: it is looked
  up from the earlier assistant ``tool_calls`` by ``tool_call_id`` (unknown id → 400). The
  response is always wrapped as ``{"output": "<tool message text>"}``. Consecutive tool messages
  become one user turn, so N calls are answered by N ``functionResponse`` parts.
- Tool-call ids: AI Studio usually gives none, and Gemini 3 attaches a ``thoughtSignature`` that
  must come back on the same part. Both are carried statelessly inside the OpenAI id: a plain id
  is ``call_<24 hex>``; one that carries Gemini's own id and/or the signature is
  ``call_gx<24 hex><base64url(JSON [id, signature])>`` (only ``[A-Za-z0-9_-]``, so other
  providers accept it after a fallback). The 24 hex are derived from ``responseId`` + candidate
  + position, so the streamed and plain answers of one response get the same ids. Foreign ids
  (other providers, clients) are not sent to Gemini. Signatures on text parts are not kept.
- Function parameter schemas are cleaned into Gemini's OpenAPI-3.0 ``Schema`` subset (sent as
  ``parameters``) rather than sent as ``parametersJsonSchema``: ``parameters`` is accepted by
  every model on both surfaces and API versions (``v1`` on Vertex included), while the JSON
  Schema field is newer and not everywhere. Cleanup inlines local ``$ref``s (recursion → a bare
  object), merges ``allOf``, turns ``oneOf`` into ``anyOf``, ``type: [T, "null"]`` and
  ``anyOf``-with-null into ``nullable``, ``const`` into a one-value ``enum``, keeps only string
  enums and the ``format``s Gemini knows, drops every other keyword (``additionalProperties``,
  ``$schema``, ``exclusiveMinimum``…), filters ``required`` to declared properties, upper-cases
  types, and omits ``parameters`` for an argument-less function. JSON mode uses
  ``responseMimeType`` + ``responseJsonSchema`` (full JSON Schema: structured output must keep
  ``additionalProperties``/ordering semantics).
- ``tool_choice``: auto → AUTO, none → NONE, required → ANY, a named function → ANY +
  ``allowedFunctionNames``, ``allowed_tools`` → the declarations are filtered to the allowed
  ones (mode AUTO or ANY).
- Images: ``data:`` URLs → ``inlineData``; any other URL → ``fileData`` with the mime type
  guessed from the URL's file extension (default ``image/jpeg``; adapters never download).
  ``input_audio`` and ``file`` (``file_data``) parts → ``inlineData``; ``file_id`` → 400.
- ``finishReason`` is ``STOP`` even for function calls → ``tool_calls``; MAX_TOKENS → ``length``;
  SAFETY/RECITATION/BLOCKLIST/… → ``content_filter``; ``promptFeedback.blockReason`` without
  candidates → ``content_filter`` with empty content. ``thought`` parts → ``reasoning_content``.
- Usage: ``prompt_tokens = promptTokenCount + toolUsePromptTokenCount`` (cached tokens are
  already inside), ``cached_tokens = cachedContentTokenCount``, ``completion_tokens =
  candidatesTokenCount + thoughtsTokenCount`` (thoughts are outside candidates), and
  ``completion_tokens_details.reasoning_tokens = thoughtsTokenCount``.
- Streams: ``data:`` chunks with text deltas and whole ``functionCall`` parts, ``usageMetadata``
  possibly repeated (the last wins), no terminator. At EOF the finish chunk(s) and, with
  ``stream_options.include_usage``, the usage chunk are emitted; EOF without any
  ``finishReason`` (or block) is a cut. An error object inside the stream → in-stream error.
- ``n`` → ``candidateCount``; each candidate becomes a choice with its own index.
- Errors: Google RPC status bodies ``{"error": {code, message, status, details}}``, sometimes in
  a one-element array. RESOURCE_EXHAUSTED / UNAVAILABLE / INTERNAL / DEADLINE_EXCEEDED are
  retryable and count against the breaker, except a RESOURCE_EXHAUSTED whose ``QuotaFailure``
  names a per-day quota (``quotaId`` contains ``PerDay``: waiting does not help → 429
  ``insufficient_quota``, not retried, counts against the breaker so the fallback takes over).
  ``RetryInfo.retryDelay`` (``"38.6s"``) → retry-after. ``ErrorInfo.reason`` ``API_KEY_INVALID``
  (sent as 400) → 401. Everything is decided from status fields, never from message text.

``reasoning_effort`` → ``thinkingConfig`` (`request.thinking_config`, budgets fitted per model).
Not mapped: ``logprobs``, ``logit_bias``, ``user``, ``parallel_tool_calls`` (Gemini has no switch),
custom tools (→ 400).

Modules. Both directions: `wire` (finish reasons, HTTP ↔ RPC status, usage: each pair in one
place). Upstream (OpenAI callers → Gemini clusters): `request` (URL, auth headers,
generateContent body; `upstream_request` is shared with the native path), `messages` (turns and
function calls/responses), `content` (content parts), `schema` (function-schema cleanup), `ids`
(tool-call id / thoughtSignature carrier), `response` (whole answer → OpenAI), `stream` (stream
translator), `errors` (failure classification), `adapter` (`GeminiAdapter`). Ingress (Gemini
callers): `ingress` (the codec, `CODEC`), `ingress_request` (reading bodies), `ingress_translate`
(→ OpenAI), `ingress_response` / `ingress_stream` (OpenAI answers → Gemini), `ingress_errors`,
`ingress_models`; the native path to Gemini clusters: `native` (`NATIVE`), `policy_access`
(`ACCESS`), `native_watch`.
"""
