"""Opaque reasoning state carried in an OpenAI tool-call id, statelessly.

Providers that sign their reasoning (Anthropic thinking blocks, Bedrock `reasoningContent`) need it
back, unchanged, at the start of the next request of a tool loop. OpenAI clients echo tool-call
ids faithfully, so the blocks ride in the first call's id:
``<provider id>.th<base64url(zlib(JSON list of blocks))>``. Anthropic and Bedrock tool-use ids are
``[A-Za-z0-9_-]+``, so the ``.`` never occurs in a plain id. (Gemini signatures use their own
carrier, `gemini/ids.py`.)
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any

import orjson

Json = dict[str, Any]

_MARK = ".th"


def carry(call_id: str, blocks: list[Json]) -> str:
    """A tool-call id that carries `blocks`; the plain id when there are none."""
    if not blocks:
        return call_id
    packed = base64.urlsafe_b64encode(zlib.compress(orjson.dumps(blocks))).rstrip(b"=")
    return call_id + _MARK + packed.decode("ascii")


def uncarry(call_id: Any) -> tuple[Any, list[Json]]:
    """(the provider's own id, the blocks carried) of one of our ids; ([], as is) otherwise."""
    if not isinstance(call_id, str) or _MARK not in call_id:
        return call_id, []
    plain, _, packed = call_id.partition(_MARK)
    try:
        blocks = orjson.loads(zlib.decompress(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))))
    except (binascii.Error, ValueError, zlib.error):
        return call_id, []
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        return call_id, []
    return plain, blocks
