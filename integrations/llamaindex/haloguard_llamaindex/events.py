"""Every decision made by this package is also a LlamaIndex instrumentation event.

Observability handlers registered on the root dispatcher (Arize Phoenix, Langfuse, a custom
``BaseEventHandler``...) see ``HaloGuardDecisionEvent`` next to LlamaIndex's own events, inside
the span of the query, chat turn or tool call that caused it.
"""

from __future__ import annotations

from collections.abc import Sequence

from haloguard_agents import Content, Decision, Firewall
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events import BaseEvent

dispatcher = get_dispatcher(__name__)


class HaloGuardDecisionEvent(BaseEvent):
    """One firewall decision; ``component`` names the guarded LlamaIndex component."""

    decision: Decision
    component: str

    @classmethod
    def class_name(cls) -> str:
        return "HaloGuardDecisionEvent"


def emit(decisions: list[Decision], component: str) -> list[Decision]:
    for decision in decisions:
        dispatcher.event(HaloGuardDecisionEvent(decision=decision, component=component))
    return decisions


def check(firewall: Firewall, contents: Sequence[Content], component: str) -> list[Decision]:
    """``firewall.check_many`` plus one event per decision."""
    return emit(firewall.check_many(contents), component)


async def acheck(firewall: Firewall, contents: Sequence[Content], component: str) -> list[Decision]:
    """``firewall.acheck_many`` (the guard never runs on the event loop) plus one event per decision."""
    return emit(await firewall.acheck_many(contents), component)
