"""Tool-call ids: Gemini's own call id and a `thoughtSignature`, carried statelessly in the OpenAI id.

A plain id is ``call_<24 hex>``; one that carries Gemini's id and/or the signature is
``call_gx<24 hex><base64url(JSON [id, signature])>`` (only ``[A-Za-z0-9_-]``). The 24 hex come
from ``responseId`` + candidate + position, so the plain and streamed answers agree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid

import orjson

_CARRIER = "call_gx"
_NONCE_LEN = 24


def call_nonce(response_id: str | None, candidate: int, position: int) -> str:
    """24 hex chars, stable for one (responseId, candidate, position); random without an id."""
    if not response_id:
        return uuid.uuid4().hex[:_NONCE_LEN]
    seed = f"{response_id}/{candidate}/{position}".encode()
    return hashlib.blake2b(seed, digest_size=_NONCE_LEN // 2).hexdigest()


def encode_call_id(nonce: str, gemini_id: str | None, signature: str | None) -> str:
    if gemini_id is None and signature is None:
        return "call_" + nonce
    payload = base64.urlsafe_b64encode(orjson.dumps([gemini_id, signature])).rstrip(b"=")
    return _CARRIER + nonce + payload.decode("ascii")


def decode_call_id(call_id: str) -> tuple[str | None, str | None]:
    """(Gemini's own call id, thoughtSignature) carried in one of our ids; (None, None) otherwise."""
    if not call_id.startswith(_CARRIER) or len(call_id) <= len(_CARRIER) + _NONCE_LEN:
        return None, None
    payload = call_id[len(_CARRIER) + _NONCE_LEN :]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):
        return None, None
    if not (isinstance(data, list) and len(data) == 2):
        return None, None
    gemini_id, signature = data
    if not all(v is None or isinstance(v, str) for v in data):
        return None, None
    return gemini_id, signature
