"""A callback handler: the firewall for chains, retrievers and tools that run outside a graph.

A callback cannot change what flows through a run, so the handler blocks by raising
``HaloGuardBlocked`` (``raise_error = True`` makes LangChain propagate it): the chat model is
not called, the tool does not run, retrieved documents are not returned.

There is deliberately no async twin. In async runs LangChain calls a sync handler in a worker
thread, so the event loop never waits on the guard, and its exception propagates. An
``AsyncCallbackHandler``'s exception does not: where LangChain drives it from its sync callback
path (a sync tool called with ``ainvoke``, say) it logs and swallows it, and the tool runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from haloguard_agents import Content, Decision, Firewall, HaloGuardError, Surface
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage


class HaloGuardBlocked(HaloGuardError):
    """Raised when the firewall blocks something; ``decisions`` says what and why."""

    def __init__(self, decisions: Sequence[Decision]):
        self.decisions = list(decisions)
        what = "; ".join(f"{d.surface.value}{f' {d.tool}' if d.tool else ''}: {d.explain()}" for d in self.decisions)
        super().__init__(f"HaloGuard blocked {what}")


class HaloGuardCallbackHandler(BaseCallbackHandler):
    """Checks chat model prompts (the newest user message of each), tool calls and retrieved
    documents. Works in sync and async runs alike (see the module docstring)."""

    raise_error = True

    def __init__(self, firewall: Firewall):
        self.firewall = firewall

    def _check(self, contents: list[Content]) -> None:
        blocked = [d for d in self.firewall.check_many(contents) if not d.allowed] if contents else []
        if blocked:  # no human to ask here: ask blocks too
            raise HaloGuardBlocked(blocked)

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        newest = [next((m for m in reversed(prompt) if isinstance(m, HumanMessage)), None) for prompt in messages]
        self._check([Content(Surface.USER_INPUT, m.content, meta={"message_id": m.id}) for m in newest if m])

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any) -> None:
        self._check([Content(Surface.USER_INPUT, p) for p in prompts])

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, inputs: dict[str, Any] | None = None,
                      **kwargs: Any) -> None:
        name = (serialized or {}).get("name") or "unknown_tool"
        self._check([Content.tool_call(name, inputs if inputs is not None else input_str)])

    def on_retriever_end(self, documents: Sequence[Document], **kwargs: Any) -> None:
        self._check([Content(Surface.RETRIEVED_DOCUMENT, d.page_content, source=d.metadata.get("source") or d.id)
                     for d in documents])
