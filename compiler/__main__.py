"""`python -m compiler …` runs the `astra` command line."""

import sys

from compiler.cli import main

sys.exit(main())
