"""The `astra` command's frame: the parser with one sub-command per verb, and running the chosen one.

Light on purpose: `astra serve` builds its parser from this and its own verb alone, so the
serving process never imports the compiler (`astra_sidecar.compiler.cli` holds its verbs).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import TypeAlias

from astra_sidecar.compiler.providers import PROVIDERS

Run = Callable[[argparse.Namespace], int]
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
#: Adds one verb's sub-parser (with `run` as its default) to the command's sub-parsers.
Verb = Callable[[SubParsers], None]

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def credential_variables() -> str:
    """The environment variables the providers read, one per line (for the --help pages)."""
    keys = sorted({spec.api_key_env for spec in PROVIDERS.values() if spec.api_key_env})
    bases = sorted({spec.base_url_env for spec in PROVIDERS.values() if spec.base_url_env})
    return "\n".join(
        [
            textwrap.fill(", ".join(keys), width=96, initial_indent="  ", subsequent_indent="  "),
            "      API keys of the providers (an agent's `credentials:` may name another variable)",
            *(f"  {name}\n      base URL of a local server when the agent has no endpoint" for name in bases),
            "  AWS_REGION / AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE …",
            "      Bedrock: region and botocore's credential chain",
            "  ASTRA_GEMINI_VERTEX_AI_ENABLED, …_PROJECT, …_LOCATION, …_CREDENTIALS_FILE",
            "      Gemini through Vertex AI (needs: pip install 'astra-sidecar[vertex]');",
            "      GOOGLE_APPLICATION_CREDENTIALS for Application Default Credentials",
        ]
    )


#: --help pages keep their line breaks (exit status and variable lists).
HELP_FORMAT = argparse.RawDescriptionHelpFormatter


class _Version(argparse.Action):
    """--version, looking the version up only when asked (importlib.metadata is slow to import)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib import metadata

        try:
            version = metadata.version("astra-sidecar")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        sys.stdout.write(f"astra {version}\n")
        parser.exit()


def build_parser(verbs: Sequence[Verb], description: str) -> argparse.ArgumentParser:
    """The `astra` parser with `--version` and one sub-command per verb."""
    parser = argparse.ArgumentParser(
        prog="astra",
        description=description,
        epilog="exit status: 0 success; 1 errors in the input; 2 usage or I/O errors.\n"
        "Each command's --help lists its arguments, exit status and environment variables.",
        formatter_class=HELP_FORMAT,
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in verbs:
        add(commands)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse `argv` and run the chosen verb; returns the exit status."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    run: Run = args.run
    return run(args)


__all__ = [
    "EXIT_ERRORS",
    "EXIT_OK",
    "EXIT_USAGE",
    "HELP_FORMAT",
    "Run",
    "SubParsers",
    "Verb",
    "build_parser",
    "credential_variables",
    "run_command",
]
