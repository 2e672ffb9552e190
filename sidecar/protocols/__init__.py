"""One folder per wire format (openai, anthropic, gemini, bedrock, mock); `registry` maps each
wire format to its parts, and `base` / `codec` define those parts."""
