"""``GuardNodePostprocessor``: score retrieved nodes before the synthesizer reads them."""

from __future__ import annotations

from typing import Any, Literal

from haloguard_agents import Action, Content, Decision, Firewall, Surface
from llama_index.core.bridge.pydantic import Field
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from .events import acheck, check


class GuardNodePostprocessor(BaseNodePostprocessor):
    """Scores all retrieved nodes as ``retrieved_document`` in one batch; drops or flags unsafe ones.

    ``mode="drop"`` removes every node the firewall does not allow (poisoned chunks carrying
    hidden instructions, harmful content) and flags kept nodes whose decision was not a clean
    allow (``log``, or a guard error that the surface's ``on_error`` let through), so no error
    passes silently. ``mode="flag"`` keeps every node and flags all of them, for review UIs and
    rerankers. Flags live in ``node.metadata[metadata_key]`` (action, scores, policies, reasons)
    and are hidden from the LLM and the embedder. Nodes are copied, never mutated in the store.
    The text scored is what the LLM would see: content plus LLM-visible metadata.
    """

    firewall: Any = Field(exclude=True, description="a haloguard_agents.Firewall")
    mode: Literal["drop", "flag"] = "drop"
    metadata_key: str = "haloguard"

    def __init__(self, firewall: Firewall, mode: Literal["drop", "flag"] = "drop", **kwargs: Any):
        super().__init__(firewall=firewall, mode=mode, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "GuardNodePostprocessor"

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        return self._apply(nodes, check(self.firewall, _contents(nodes), self.class_name()))

    async def _apostprocess_nodes(self, nodes: list[NodeWithScore],
                                  query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        return self._apply(nodes, await acheck(self.firewall, _contents(nodes), self.class_name()))

    def _apply(self, nodes: list[NodeWithScore], decisions: list[Decision]) -> list[NodeWithScore]:
        kept = []
        for node, decision in zip(nodes, decisions, strict=True):
            if self.mode == "drop" and not decision.allowed:
                continue
            if self.mode == "flag" or decision.action is not Action.ALLOW or decision.error:
                node = self._flag(node, decision)
            kept.append(node)
        return kept

    def _flag(self, node: NodeWithScore, decision: Decision) -> NodeWithScore:
        key, inner = self.metadata_key, node.node
        flag = {
            "action": decision.action.value,
            "intended": decision.intended.value,  # differs in shadow mode
            "unsafe": decision.verdict.unsafe if decision.verdict else None,
            "policies": dict(decision.top_policies),
            "explanation": decision.explain(),
            "error": decision.error,
            "decision_id": decision.id,
        }
        copy = inner.model_copy(update={
            "metadata": {**inner.metadata, key: flag},
            "excluded_llm_metadata_keys": [*inner.excluded_llm_metadata_keys, key],
            "excluded_embed_metadata_keys": [*inner.excluded_embed_metadata_keys, key],
        })
        return NodeWithScore(node=copy, score=node.score)


def _contents(nodes: list[NodeWithScore]) -> list[Content]:
    """What the LLM would read: the text plus LLM-visible metadata (where injections hide too)."""
    return [Content(Surface.RETRIEVED_DOCUMENT, n.node.get_content(metadata_mode=MetadataMode.LLM),
                    source=n.node.node_id) for n in nodes]
