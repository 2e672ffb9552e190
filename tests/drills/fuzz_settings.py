"""How many examples each fuzz test runs, and how many cases each target ran.

`fuzz(n)`: Hypothesis settings for n examples in CI, or `ASTRA_FUZZ_EXAMPLES` each in the long
run (see `scripts/fuzz`). Tests count their cases in `CASES`; `write_report` writes the counts as
JSON to `ASTRA_FUZZ_REPORT` when it is set (Hypothesis' passing examples, plus the few it
discarded part-way). Every fuzz module shares the one counter, so the last module to finish
writes every target's count.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

LONG = int(os.environ.get("ASTRA_FUZZ_EXAMPLES", "0"))
CASES: Counter[str] = Counter()


def fuzz(ci_examples: int) -> Any:
    return settings(
        max_examples=LONG or ci_examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


def write_report() -> None:
    path = os.environ.get("ASTRA_FUZZ_REPORT")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(dict(sorted(CASES.items())), indent=2) + "\n")
