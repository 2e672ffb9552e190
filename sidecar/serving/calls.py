"""How one client call becomes an attempt on each cluster of its plan (`CallShape`).

- **OpenAI** calls, and calls of another API on a cluster of another wire format, are OpenAI
  requests with the agent's policy applied (`OpenAICall`), sent through the cluster's adapter.
- A call of an API that has a native path (Anthropic, Gemini), on a cluster of that same wire
  format (Responses: on OpenAI's own clusters, `registry.serves_natively`), passes through with the policy applied in its own format, and its answer goes back to
  the client byte for byte (`ForeignCall`, which also holds the translated form for fallbacks of
  another format, each built once, when first needed).

Agents with a restrictive tool policy, and agents that hide reasoning (`expose: false`: their
answers lose `reasoning_content` here, whole and streamed), are always translated: a native
answer is relayed byte for byte, and the tool guard reads OpenAI answers only. Their translation starts from the body with
the tool policy applied in the caller's format (as the native path would apply it), so a refused
tool that has no OpenAI form (a Gemini `googleSearch`, an Anthropic server tool) is removed and
reported, not refused by the translation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.policy.agent import Prepared
from astra_sidecar.sidecar.policy.reasoning import HiddenReasoning, exposes, hide_in_completion
from astra_sidecar.sidecar.protocols import registry
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Completion, StreamTranslator
from astra_sidecar.sidecar.protocols.codec import IngressCall, IngressCodec, NativePath, StreamWatch
from astra_sidecar.sidecar.protocols.openai.policy_access import ACCESS as OPENAI_ACCESS
from astra_sidecar.sidecar.protocols.openai.validate import check_chat_body
from astra_sidecar.sidecar.resilience.attempt import BuiltAttempt, CallShape
from astra_sidecar.sidecar.serving import off_loop

if TYPE_CHECKING:  # types only: the runtime imports the protocol registry
    from astra_sidecar.sidecar.runtime import AgentRuntime, ClusterRuntime


class OpenAICall:
    """An OpenAI chat request: the agent's policy per cluster, then the cluster's adapter."""

    __slots__ = ("_agent", "_call", "_large", "prepared")

    def __init__(self, agent: AgentRuntime, prepared: Prepared, call: IngressCall, large: bool = False) -> None:
        self._agent = agent
        self._call = call
        self._large = large
        self.prepared = prepared

    async def build(self, cluster: ClusterRuntime) -> BuiltAttempt:
        auth = await cluster.credentials.material(self._call.inbound)
        if self._large:
            return await off_loop.run(lambda: self._built(cluster, auth))
        return self._built(cluster, auth)

    def _built(self, cluster: ClusterRuntime, auth: AuthMaterial) -> BuiltAttempt:
        body = self._agent.policy.for_cluster(self.prepared, cluster.cluster, OPENAI_ACCESS)
        return BuiltAttempt(cluster.adapter.build_request(cluster.cluster, self._agent.agent, body, auth), body)

    def parse(self, cluster: ClusterRuntime, built: BuiltAttempt, raw: bytes) -> Completion:
        completion = cluster.adapter.parse_response(cluster.cluster, built.body, raw)
        if exposes(self._agent.agent):
            return completion
        return replace(completion, body=hide_in_completion(completion.body))

    def translator(self, cluster: ClusterRuntime, built: BuiltAttempt) -> StreamTranslator:
        translator = cluster.adapter.stream_translator(cluster.cluster, built.body)
        return translator if exposes(self._agent.agent) else HiddenReasoning(translator)

    def watch(self, cluster: ClusterRuntime, built: BuiltAttempt) -> StreamWatch:
        raise AssertionError("OpenAI calls are never native")


class ForeignCall:
    """A call in an API with a native path: native on clusters of its wire format (unless the
    agent's tool guard needs OpenAI answers), translated through OpenAI everywhere else."""

    def __init__(
        self, codec: IngressCodec, native: NativePath, call: IngressCall, agent: AgentRuntime, large: bool = False
    ) -> None:
        self._large = large
        self._codec = codec
        self._native_path = native
        self._call = call
        self._agent = agent
        self._guarded = agent.policy.tool_guard is not None
        #: An agent that hides reasoning never goes native either: native answers are relayed as sent.
        self._hides_reasoning = not exposes(agent.agent)
        self._native: Prepared | None = None
        self._openai: OpenAICall | None = None

    def removed_tools(self) -> tuple[str, ...]:
        """Applies the per-request policy for the primary cluster's path; the tools it removed."""
        if self._is_native(self._agent.plan[0].cluster):
            return self._native_prepared().removed_tools
        return self._openai_call().prepared.removed_tools

    def _is_native(self, cluster: Cluster) -> bool:
        if self._guarded or self._hides_reasoning:
            return False
        return registry.serves_natively(self._codec.wire, cluster)

    def _native_prepared(self) -> Prepared:
        if self._native is None:
            self._native = self._agent.policy.prepare(self._call.body, self._native_path.access)
        return self._native

    def _openai_call(self) -> OpenAICall:
        if self._openai is None:
            call = self._call
            removed: tuple[str, ...] = ()
            if self._guarded:
                native = self._native_prepared()
                call, removed = replace(call, body=native.body), native.removed_tools
            prepared = self._agent.policy.prepare(check_chat_body(self._codec.to_openai(call)), OPENAI_ACCESS)
            if removed:
                prepared = replace(prepared, removed_tools=removed + prepared.removed_tools)
            self._openai = OpenAICall(self._agent, prepared, self._call, self._large)
        return self._openai

    async def build(self, cluster: ClusterRuntime) -> BuiltAttempt:
        if not self._is_native(cluster.cluster):
            call = await off_loop.run(self._openai_call) if self._large else self._openai_call()
            return await call.build(cluster)
        auth = await cluster.credentials.material(self._call.inbound)
        if self._large:
            return await off_loop.run(lambda: self._built_native(cluster, auth))
        return self._built_native(cluster, auth)

    def _built_native(self, cluster: ClusterRuntime, auth: AuthMaterial) -> BuiltAttempt:
        native = self._native_path
        body = self._agent.policy.for_cluster(self._native_prepared(), cluster.cluster, native.access)
        return BuiltAttempt(native.request(cluster.cluster, body, auth, self._call), body, native=True)

    def parse(self, cluster: ClusterRuntime, built: BuiltAttempt, raw: bytes) -> Completion:
        if not built.native:
            return self._openai_call().parse(cluster, built, raw)
        return Completion(raw, self._native_path.validate(cluster.cluster, raw))

    def translator(self, cluster: ClusterRuntime, built: BuiltAttempt) -> StreamTranslator:
        return self._openai_call().translator(cluster, built)

    def watch(self, cluster: ClusterRuntime, built: BuiltAttempt) -> StreamWatch:
        return self._native_path.watch(cluster.cluster)


def call_shape(
    codec: IngressCodec, call: IngressCall, agent: AgentRuntime, *, large: bool = False
) -> tuple[CallShape, tuple[str, ...]]:
    """The shape of `call` for `agent`'s plan, and the request tools its policy removed.
    `large`: a large request, whose attempts build their bodies in `off_loop`'s lane."""
    native = registry.native_path(codec.wire)
    if native is None:
        body = codec.to_openai(call)
        if codec.wire != OPENAI_WIRE:
            body = check_chat_body(body)
        prepared = agent.policy.prepare(body, OPENAI_ACCESS)
        return OpenAICall(agent, prepared, call, large), prepared.removed_tools
    shape = ForeignCall(codec, native, call, agent, large)
    return shape, shape.removed_tools()


OPENAI_WIRE = "openai"
