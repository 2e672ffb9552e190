"""The routing table: the one contract between the compiler and the sidecar.

`model` holds the frozen dataclasses and the JSON loader, `retry` the meaning of a retry policy
(backoff delays and the worst-case latency budget), `prompts` the sandbox that renders system
prompts. The sidecar imports nothing else of the compiler.
"""

from compiler.table.model import (
    SCHEMA_VERSION,
    Agent,
    BreakerPolicy,
    Cluster,
    Credentials,
    Json,
    Listen,
    MockBehavior,
    MockToolCall,
    PlanLimits,
    PromptCache,
    RequestRules,
    RetryPolicy,
    RoutingTable,
    Settings,
    Timeouts,
    ToolPolicy,
    VertexTarget,
    canonical_json,
    cluster_key,
    content_hash,
    dump_table_json,
    table_from_json,
)

__all__ = [
    "SCHEMA_VERSION",
    "Agent",
    "BreakerPolicy",
    "Cluster",
    "Credentials",
    "Json",
    "Listen",
    "MockBehavior",
    "MockToolCall",
    "PlanLimits",
    "PromptCache",
    "RequestRules",
    "RetryPolicy",
    "RoutingTable",
    "Settings",
    "Timeouts",
    "ToolPolicy",
    "VertexTarget",
    "canonical_json",
    "cluster_key",
    "content_hash",
    "dump_table_json",
    "table_from_json",
]
