"""The `astra` command: the compiler's verbs (lint, compile, explain, diff) and the sidecar's serve.

This is the one module that knows both halves. The compiler never imports the sidecar, and the
sidecar never imports the compiler beyond `astra_sidecar.compiler.table`: `serve` hands it the table loader,
`astra_sidecar.table_child.load_in_child` (an astra.yml is compiled on the spot, a compiled table is
checked, in a child process; failures raise `astra_sidecar.compiler.table.TableLoadError`). The sidecar is
imported only when `serve` runs, so the other verbs start without aiohttp and the protocol adapters, and
the compiler is imported only by the verbs that compile, so `serve` runs without it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from astra_sidecar.compiler.command import (
    HELP_FORMAT,
    SubParsers,
    Verb,
    build_parser,
    credential_variables,
    run_command,
)

DESCRIPTION = "Compile, lint and serve astra.yml LLM gateway configs."


def _run_serve(args: argparse.Namespace) -> int:
    from astra_sidecar.table_child import EarlyLoader

    load = EarlyLoader()
    load.start(args.config)  # compiles while the server's modules are imported
    from astra_sidecar.sidecar.server import serve_main

    status: int = serve_main(args, load)
    return status


SERVE_EXIT = """exit status:
  0  stopped by SIGTERM or SIGINT after draining
  2  usage error; the config cannot be read, compiled or served here (e.g. a Vertex AI agent
     without the `vertex` extra); the address cannot be bound (port in use, unknown host)"""

SERVE_SIGNALS = """signals: SIGHUP reloads CONFIG (so does saving it); SIGTERM/SIGINT drain and stop.
Logs are JSON lines on stderr."""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range: a port is 0-65535 (0: any free port)")
    return port


def _workers(text: str) -> int:
    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if workers < 1:
        raise argparse.ArgumentTypeError(f"{workers}: at least 1 worker")
    return workers


def add_serve(verbs: SubParsers) -> None:
    serve = verbs.add_parser(
        "serve",
        help="run the sidecar proxy",
        description="Serve an astra.yml (compiled at start) or a compiled routing table: the OpenAI, "
        "Anthropic and Gemini APIs, /healthz, /readyz and /metrics on one port.",
        epilog="\n\n".join(
            (
                SERVE_EXIT,
                SERVE_SIGNALS,
                "environment (read at start and on reload):\n" + credential_variables(),
            )
        ),
        formatter_class=HELP_FORMAT,
    )
    serve.add_argument("config", metavar="CONFIG_OR_TABLE", help="astra.yml or a compiled routing table")
    serve.add_argument("--host", help="listen address (default: settings.listen.host, 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, help="listen port, 0-65535 (default: settings.listen.port, 8080)"
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes sharing the port; /metrics shows their totals (default: 1)",
    )
    serve.set_defaults(run=_run_serve)


def verbs_for(argv: Sequence[str]) -> tuple[Verb, ...]:
    """The verbs the parser needs: `serve` alone when that is the command, so the serving process
    never imports the compiler (`astra --help` and the other verbs get all of them)."""
    if argv[:1] == ["serve"]:
        return (add_serve,)
    from astra_sidecar.compiler.cli import COMPILER_VERBS

    return (*COMPILER_VERBS, add_serve)


def main(argv: list[str] | None = None) -> int:
    """Run the `astra` command line; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    return run_command(build_parser(verbs_for(args), DESCRIPTION), args)
