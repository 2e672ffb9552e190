"""`python -m astra_sidecar …` runs the `astra` command line."""

import sys

from astra_sidecar.cli import main

sys.exit(main())
