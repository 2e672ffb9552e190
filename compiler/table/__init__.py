"""The routing table: the one contract between the compiler and the sidecar.

`model` holds the frozen dataclasses, `load` their JSON form (the loader, the canonical bytes and
the content hash), `retry` the meaning of a retry policy (backoff delays and the worst-case
latency budget), `prompts` the sandbox that renders system prompts, `reasoning` each model
family's reasoning control (the compiler's checks and the sidecar's budgets). The sidecar imports nothing
else of the compiler (tests/compiler/test_import_contract.py checks it).
"""

from astra_sidecar.compiler.table.load import (
    TableLoadError,
    canonical_json,
    content_hash,
    dump_table_json,
    table_from_json,
)
from astra_sidecar.compiler.table.model import (
    SCHEMA_VERSION,
    Agent,
    BaseUrlRule,
    BreakerPolicy,
    Cluster,
    Credentials,
    EmbeddingRules,
    Json,
    Listen,
    MockBehavior,
    MockToolCall,
    PlanLimits,
    PromptCache,
    Reasoning,
    RequestRules,
    ResponsesStore,
    RetryPolicy,
    RoutingTable,
    Settings,
    Timeouts,
    ToolPolicy,
    VertexTarget,
    cluster_key,
)

__all__ = [
    "SCHEMA_VERSION",
    "Agent",
    "BaseUrlRule",
    "BreakerPolicy",
    "Cluster",
    "Credentials",
    "EmbeddingRules",
    "Json",
    "Listen",
    "MockBehavior",
    "MockToolCall",
    "PlanLimits",
    "PromptCache",
    "Reasoning",
    "RequestRules",
    "ResponsesStore",
    "RetryPolicy",
    "RoutingTable",
    "Settings",
    "TableLoadError",
    "Timeouts",
    "ToolPolicy",
    "VertexTarget",
    "canonical_json",
    "cluster_key",
    "content_hash",
    "dump_table_json",
    "table_from_json",
]
