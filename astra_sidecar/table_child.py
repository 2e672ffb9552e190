"""`astra serve`'s table loader: the astra.yml is compiled (a routing-table JSON checked) in a child
process, and the sidecar reads back the table it wrote.

So the serving process never imports the compiler (PyYAML, jsonschema and its schemas, Jinja2
for the template checks): about 8 MB that every sidecar would carry for its whole life (README,
"Footprint"). And what a file costs to compile — a huge or hostile astra.yml — is the child's
memory and time, not the serving loop's. Reloads load the same way.

The child (`python -m astra_sidecar.table_child PATH`) writes one JSON document to stdout:
`{"table": …}`, or `{"reasons": […], "message": …}` for a `TableLoadError`.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson

from astra_sidecar.compiler.table import RoutingTable, TableLoadError, table_from_json

#: The longest a compile may take before the load fails (1,000 agents compile in about a second).
COMPILE_TIMEOUT_S = 120.0


def load_in_child(path: str) -> RoutingTable:
    """The table at `path`, compiled or checked by a child process; raises TableLoadError."""
    return _finish(path, _spawn(path))


class EarlyLoader:
    """`load_in_child` whose first load is started before the server is imported (`start`): the
    child compiles while the serving process imports aiohttp and the protocols, so start-up
    waits for the longer of the two, not for both. Reloads start their child when called."""

    def __init__(self) -> None:
        self._early: tuple[str, subprocess.Popen[bytes]] | None = None

    def start(self, path: str) -> None:
        self._early = (path, _spawn(path))

    def __call__(self, path: str) -> RoutingTable:
        early, self._early = self._early, None
        if early is not None and early[0] == path:
            return _finish(path, early[1])
        if early is not None:
            early[1].kill()
            early[1].wait()
        return load_in_child(path)


def _spawn(path: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "astra_sidecar.table_child", path]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(path: str, child: subprocess.Popen[bytes]) -> RoutingTable:
    try:
        stdout, stderr = child.communicate(timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise TableLoadError([f"{path}: not compiled within {COMPILE_TIMEOUT_S:.0f} s"]) from None
    answer = _answer(stdout)
    if answer is None:
        last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise TableLoadError([f"{path}: the compiler process failed (exit {child.returncode}): {last[0]}"])
    if "table" in answer:
        return table_from_json(answer["table"])
    raise TableLoadError(answer["reasons"], answer["message"])


def _answer(stdout: bytes) -> dict[str, Any] | None:
    try:
        answer = orjson.loads(stdout)
    except orjson.JSONDecodeError:
        return None
    if isinstance(answer, dict) and ("table" in answer or {"reasons", "message"} <= answer.keys()):
        return answer
    return None


def main(path: str) -> int:
    from astra_sidecar.compiler.loader import load_table_json

    try:
        answer: dict[str, Any] = {"table": load_table_json(path)}
    except TableLoadError as exc:
        answer = {"reasons": list(exc.reasons), "message": str(exc)}
    sys.stdout.buffer.write(orjson.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
