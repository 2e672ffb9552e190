"""A fleet of sidecars: agent quotas and budgets, kept in-process or shared through Redis.

`quota.py` decides per request (admit before the plan, settle real usage at the end); the
counters are `local.py` (one process) or `redis_store.py` (atomic Lua scripts, GCRA for rates, a
calendar counter for budgets, a lease set for concurrent streams); `headers.py` words the answer's
`x-ratelimit-*` headers; `metrics.py` the Prometheus families. See docs/fleet.md.
"""
