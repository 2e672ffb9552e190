#!/usr/bin/env bash
# Many concurrent paced streams (first chunk after 100 ms, then 50 chunks 20 ms apart) through the
# bare aiohttp pass-through (the ceiling) and the sidecar, side by side in one run, the proxy under
# test pinned alone to CPU 1 (benchmarks/stream/, the team's stream harness; Node 20 runs the
# paced upstream and the client). Run it alone on the machine: other load skews every figure.
# Usage: benchmarks/streams.sh [--conns 100,400] [--seconds 15] [--targets ceiling,astra,astra-claude]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "streams.sh needs node (Node 20)" >&2; exit 2; }
[ -x .venv/bin/astra ] || scripts/setup >/dev/null
conns=100,400 seconds=15 targets=ceiling,astra,astra-claude
while [ $# -gt 0 ]; do
  case "$1" in
    --conns) conns="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --targets) targets="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p out
.venv/bin/python benchmarks/stream/stream_bench.py --python .venv/bin/python --astra "$PWD/.venv/bin/astra" \
  --targets "$targets" --conns "$conns" --seconds "$seconds" | tee out/streams.jsonl
