"""One Responses request's part in the response store (`Turn`), found through a context variable:
the route handler (`routes`) looks `previous_response_id` up before the request flow runs, the
codec's `parse` continues that conversation (`continue_from`), and whoever sees the final Response
object (the stream encoder, the native stream watch, or the handler for a whole answer) hands it
over (`answered`) for the handler to keep once the answer is out.

Replayed conversations are the stored input items followed by the stored output items; output
messages and function calls lose their `id` and `status` (output, not input fields), reasoning
items keep theirs (OpenAI needs them, with their encrypted content when nothing is stored there).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.responses.store import ResponseStore

Json = dict[str, Any]

_CURRENT: contextvars.ContextVar[Turn | None] = contextvars.ContextVar("astra_responses_turn", default=None)
_OUTPUT_ONLY = ("id", "status")


@dataclass
class Turn:
    store: ResponseStore | None
    #: The stored entry of the request's `previous_response_id` (None: not found, or none asked).
    previous: Json | None = None
    unavailable: bool = False
    #: Set by `continue_from`: whether this answer is kept, and the conversation it continues.
    keep: bool = False
    conversation: list[Json] = field(default_factory=list)
    answer: Json | None = None

    def answered(self, response: Json) -> None:
        self.answer = response

    def entry(self, answer: Json) -> Json:
        """What the store keeps for `answer`: the object and the whole conversation."""
        output = [replayable(item) for item in answer.get("output") or () if isinstance(item, dict)]
        return {"response": answer, "conversation": [*self.conversation, *output]}


def current_turn() -> Turn | None:
    return _CURRENT.get()


def enter(turn: Turn) -> contextvars.Token[Turn | None]:
    return _CURRENT.set(turn)


def leave(token: contextvars.Token[Turn | None]) -> None:
    _CURRENT.reset(token)


def replayable(item: Json) -> Json:
    if item.get("type") in ("message", "function_call"):
        return {k: v for k, v in item.items() if k not in _OUTPUT_ONLY}
    return item


def as_items(value: Any) -> list[Json]:
    """`input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _missing(response_id: str) -> ClientError:
    return ClientError(
        400,
        f"Previous response with id '{response_id}' not found: it expired, was deleted, was sent "
        "with store: false, or was stored by another sidecar process (see docs/config.md, "
        '"The Responses API")',
        param="previous_response_id",
        code="previous_response_not_found",
    )


def continue_from(body: Json, turn: Turn | None) -> Json:
    """The body with its `previous_response_id` replaced by that conversation in `input`."""
    previous_id = body.pop("previous_response_id", None)
    if previous_id is not None:
        if not isinstance(previous_id, str) or not previous_id:
            raise ClientError(
                400, "'previous_response_id' must be a non-empty string", param="previous_response_id"
            )
        if turn is None or turn.store is None:
            raise ClientError(
                400,
                "'previous_response_id' needs the sidecar's response store, which is turned off "
                "(settings.responses.store.maxEntries: 0). Send the whole conversation in 'input'",
                param="previous_response_id",
                code="unsupported_parameter",
            )
        if turn.unavailable:
            raise ClientError(503, "the response store is unavailable; try again", code="store_unavailable")
        if turn.previous is None:
            raise _missing(previous_id)
        stored = [item for item in turn.previous.get("conversation") or () if isinstance(item, dict)]
        body["input"] = [*stored, *as_items(body.get("input"))]
    if turn is not None:
        turn.keep = turn.store is not None and body.get("store", True) is not False
        turn.conversation = as_items(body.get("input"))
    return body
