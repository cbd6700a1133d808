"""A scripted function-calling LLM for tests and offline recipes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM

Turn = str | list[tuple[str, dict[str, Any]]] | Callable[[Sequence[ChatMessage]], str]


def scripted_llm(*turns: Turn) -> tuple[MockFunctionCallingLLM, list[list[ChatMessage]]]:
    """LlamaIndex's ``MockFunctionCallingLLM`` playing ``turns`` in order: a list of
    ``(tool, kwargs)`` calls, a text, or a callable from the messages to a text.

    Returns the LLM and ``seen``, the message lists it received (what the agent showed it).
    """
    script, seen = iter(turns), []

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        seen.append(list(messages))
        turn = next(script)
        if callable(turn):
            turn = turn(messages)
        if isinstance(turn, str):
            return ChatMessage(role="assistant", content=turn)
        return ChatMessage(role="assistant", blocks=[
            ToolCallBlock(tool_call_id=f"call-{len(seen)}-{i}", tool_name=name, tool_kwargs=args)
            for i, (name, args) in enumerate(turn)])

    return MockFunctionCallingLLM(response_generator=respond), seen
