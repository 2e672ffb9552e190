"""The `astra` command: the compiler's verbs (lint, compile, explain, diff) and the sidecar's serve.

This is the one module that knows both halves. The compiler never imports the sidecar, and the
sidecar never imports the compiler beyond `astra_sidecar.compiler.table`: `serve` hands it the table loader,
`astra_sidecar.compiler.loader.load_routing_table` (an astra.yml is compiled on the spot, a compiled table is
checked; failures raise `astra_sidecar.compiler.table.TableLoadError`). The sidecar is imported only when
`serve` runs, so the other verbs start without aiohttp and the protocol adapters.
"""

from __future__ import annotations

import argparse

from astra_sidecar.compiler.cli import COMPILER_VERBS, SubParsers, Verb, build_parser, run_command
from astra_sidecar.compiler.loader import load_routing_table

DESCRIPTION = "Compile, lint and serve astra.yml LLM gateway configs."


def _run_serve(args: argparse.Namespace) -> int:
    from astra_sidecar.sidecar.server import serve_main

    status: int = serve_main(args, load_routing_table)
    return status


def add_serve(verbs: SubParsers) -> None:
    serve = verbs.add_parser("serve", help="run the sidecar proxy")
    serve.add_argument("config", metavar="CONFIG_OR_TABLE", help="astra.yml or a compiled routing table")
    serve.add_argument("--host", help="listen address (default: settings.listen.host)")
    serve.add_argument("--port", type=int, help="listen port (default: settings.listen.port)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    serve.set_defaults(run=_run_serve)


VERBS: tuple[Verb, ...] = (*COMPILER_VERBS, add_serve)


def main(argv: list[str] | None = None) -> int:
    """Run the `astra` command line; returns the exit status."""
    return run_command(build_parser(VERBS, DESCRIPTION), argv)
