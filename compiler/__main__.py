"""`python -m astra_sidecar.compiler …` runs the compiler's verbs (lint, compile, explain, diff) for scripts that
need no sidecar; the whole `astra` command, `serve` included, is `python -m astra_sidecar`."""

import sys

from astra_sidecar.compiler.cli import main

sys.exit(main())
