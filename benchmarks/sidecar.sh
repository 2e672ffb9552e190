#!/usr/bin/env bash
# The sidecar against a bare aiohttp pass-through (the ceiling), side by side in one run, on the
# loopback harness in benchmarks/loopback (nginx as the canned upstream, wrk as the client; the
# proxy under test pinned to CPU 1). Installs nginx and wrk from Debian when missing (needs root).
# Usage: benchmarks/sidecar.sh [--duration SECONDS] [--workers N]   → JSON lines, summary last.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=5
workers=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nginx wrk >/dev/null
fi
[ -x .venv/bin/astra ] || scripts/setup >/dev/null
mkdir -p out
exec .venv/bin/python benchmarks/loopback/run_bench.py \
  --python .venv/bin/python --duration "$duration" --json-out out/bench.json \
  --sidecar-cmd "$PWD/.venv/bin/astra serve $PWD/benchmarks/loopback/astra.bench.yml --port 8080 --workers $workers"
