"""The fixtures of `helpers` (the sidecar world of the ingress tests), for every test file here."""

from tests.sidecar.protocols.gemini.helpers import rsa_key, world

__all__ = ["rsa_key", "world"]
