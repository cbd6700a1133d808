"""A scripted chat model for tests and offline recipes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


def check_history(messages: Sequence[BaseMessage]) -> None:
    """Raise ValueError where a provider would reject the history: every tool call of an
    ``AIMessage`` needs exactly one ``ToolMessage`` before the next turn, and every
    ``ToolMessage`` must answer such a call."""
    open_calls: set[str] = set()
    for m in messages:
        if isinstance(m, ToolMessage):
            if m.tool_call_id not in open_calls:
                raise ValueError(f"ToolMessage {m.tool_call_id!r} answers no open tool call")
            open_calls.discard(m.tool_call_id)
            continue
        if open_calls:
            raise ValueError(f"tool calls {sorted(open_calls)} have no ToolMessage")
        if isinstance(m, AIMessage):
            ids = [c["id"] for c in m.tool_calls]
            if len(set(ids)) != len(ids):
                raise ValueError(f"duplicate tool call ids {ids}")
            open_calls = set(ids)
    if open_calls:
        raise ValueError(f"tool calls {sorted(open_calls)} have no ToolMessage")


class ScriptedChatModel(BaseChatModel):
    """Answers with ``responses`` in order (predetermined text and tool calls).

    It checks each history it receives with :func:`check_history`, like a provider API, and
    keeps it in ``seen``. ``bind_tools`` returns the model itself, so ``create_agent`` works.
    """

    responses: list[Any]
    """``AIMessage``s or plain strings, in the order the model gives them."""
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "haloguard-scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        check_history(messages)
        if len(self.seen) >= len(self.responses):
            raise RuntimeError(f"ScriptedChatModel ran out of responses after {len(self.responses)} calls")
        reply = self.responses[len(self.seen)]
        self.seen.append(list(messages))
        message = AIMessage(reply) if isinstance(reply, str) else reply.model_copy()
        return ChatResult(generations=[ChatGeneration(message=message)])
