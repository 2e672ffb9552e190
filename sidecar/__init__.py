"""The astra sidecar: an aiohttp proxy that serves a compiled routing table."""
