"""OpenAI Responses API ingress (`POST /v1/responses`): see `ingress`."""
