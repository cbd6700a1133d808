"""Graph nodes: ``guard_node`` for user input and ``ToolGate``, a ``ToolNode`` that checks first."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from haloguard_agents import Decision, Firewall
from langchain_core.messages import AnyMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph._internal._runnable import RunnableCallable
from langgraph.graph import END
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import BaseModel

from ._core import (
    DEFAULT_DECISIONS,
    DEFAULT_REFUSAL,
    Checker,
    DecisionType,
    Review,
    Steps,
    arun,
    call_content,
    is_refusal,
    review_calls,
    run,
    screen_input,
    screen_results,
    tool_messages,
)


class GuardNode(RunnableCallable):
    """Checks the newest user message(s) before the model sees them.

    Allowed messages are written back with their decision in ``response_metadata``, so they
    are never checked twice. A blocked message is withheld and a refusal ``AIMessage`` is
    appended; route on it with :func:`guard_condition` to end the turn.
    """

    def __init__(self, firewall: Firewall, *, refusal: str | Callable[[Decision], str] = DEFAULT_REFUSAL,
                 messages_key: str = "messages", name: str = "guard", tags: list[str] | None = None):
        super().__init__(self._func, self._afunc, name=name, tags=tags, trace=False)
        self.checker = Checker(firewall)
        self.refusal = refusal
        self.messages_key = messages_key

    def _func(self, input: dict[str, Any] | BaseModel) -> dict[str, Any]:
        return self._update(run(screen_input(_messages(input, self.messages_key), self.refusal), self.checker))

    async def _afunc(self, input: dict[str, Any] | BaseModel) -> dict[str, Any]:
        return self._update(await arun(screen_input(_messages(input, self.messages_key), self.refusal), self.checker))

    def _update(self, result: tuple[list[AnyMessage], Decision | None]) -> dict[str, Any]:
        return {self.messages_key: result[0]} if result[0] else {}


def guard_node(firewall: Firewall, **kwargs: Any) -> GuardNode:
    """A LangGraph node that checks user input; see :class:`GuardNode`."""
    return GuardNode(firewall, **kwargs)


def guard_condition(state: dict[str, Any] | BaseModel, messages_key: str = "messages") -> Literal["model", "__end__"]:
    """Route after ``guard_node``: ``END`` when it refused the input, else ``"model"``.

    Map ``"model"`` to your model node: ``add_conditional_edges("guard", guard_condition,
    {"model": "agent", END: END})``.
    """
    messages = _messages(state, messages_key)
    return END if messages and is_refusal(messages[-1]) else "model"


def _messages(state: Any, key: str) -> list[AnyMessage]:
    if isinstance(state, list):
        return state
    return list(state.get(key, []) if isinstance(state, dict) else getattr(state, key, []))


_REVIEWS: contextvars.ContextVar[dict[str, Review]] = contextvars.ContextVar("haloguard_reviews")


class ToolGate(ToolNode):
    """A ``ToolNode`` that checks every tool call of the last AI message before any runs.

    The calls are checked in one batch (permission rules, then the guard on the canonical
    call, strictest wins): ``deny`` answers with an error ``ToolMessage`` naming the rule or
    policy; ``ask`` pauses the graph with one ``interrupt()`` (a ``HITLRequest``, resumed
    with ``{"decisions": [{"type": "approve" | "edit" | "reject", ...}]}``); ``allow`` runs
    the tool. Results are scored as ``tool_result`` in one batch, and poisoned ones are
    replaced by a notice. The call batch is recorded in the checkpoint, so the re-run after
    a resume does not ask the firewall again. Tool errors become error ``ToolMessage``s by
    default (``handle_tool_errors=True``) so that every call gets its answer.
    """

    def __init__(self, firewall: Firewall, tools: Sequence[BaseTool | Callable] | ToolNode, *,
                 allowed_decisions: Sequence[DecisionType] = DEFAULT_DECISIONS, name: str = "tools",
                 tags: list[str] | None = None, handle_tool_errors: Any = True, messages_key: str | None = None,
                 wrap_tool_call: Callable | None = None, awrap_tool_call: Callable | None = None):
        if isinstance(tools, ToolNode):  # keep what the given node was configured with
            node = tools
            tools = list(node.tools_by_name.values())
            messages_key = messages_key or node._messages_key
            wrap_tool_call = wrap_tool_call or node._wrap_tool_call
            awrap_tool_call = awrap_tool_call or node._awrap_tool_call
        # Like ToolNode: a sync-only inner wrapper also serves async runs.
        sync_only = wrap_tool_call is not None and awrap_tool_call is None
        super().__init__(tools, name=name, tags=tags, handle_tool_errors=handle_tool_errors,
                         messages_key=messages_key or "messages", wrap_tool_call=self._gate,
                         awrap_tool_call=None if sync_only else self._agate)
        self.checker = Checker(firewall)
        self.allowed_decisions = tuple(allowed_decisions)
        self._inner_wrap, self._inner_awrap = wrap_tool_call, awrap_tool_call

    def _func(self, input: Any, config: RunnableConfig, runtime: Runtime) -> Any:
        reviews = run(self._review(input), self.checker, durable=True)
        token = _REVIEWS.set(reviews)
        try:
            output = super()._func(input, config, runtime)
        finally:
            _REVIEWS.reset(token)
        run(screen_results(self._results(output, reviews), reviews), self.checker)
        return output

    async def _afunc(self, input: Any, config: RunnableConfig, runtime: Runtime) -> Any:
        reviews = await arun(self._review(input), self.checker, durable=True)
        token = _REVIEWS.set(reviews)
        try:
            output = await super()._afunc(input, config, runtime)
        finally:
            _REVIEWS.reset(token)
        await arun(screen_results(self._results(output, reviews), reviews), self.checker)
        return output

    def _review(self, input: Any) -> Steps[dict[str, Review]]:
        calls, _ = self._parse_input(input)
        decisions = yield [call_content(c) for c in calls]
        reviews = yield from review_calls(calls, decisions, self.allowed_decisions)
        return {r.call["id"]: r for r in reviews}

    def _results(self, output: Any, reviews: dict[str, Review]) -> list[ToolMessage]:
        return [m for m in tool_messages(output, self._messages_key)
                if (r := reviews.get(m.tool_call_id)) is not None and r.runs]

    # ToolNode calls these for every call: answer the blocked ones, run the rest (edited).
    def _gate(self, request: ToolCallRequest, execute: Callable[[ToolCallRequest], ToolMessage | Command]):
        review, request = self._resolve(request)
        if review.message is not None:
            return review.message
        return self._inner_wrap(request, execute) if self._inner_wrap else execute(request)

    async def _agate(self, request: ToolCallRequest,
                     execute: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command]]):
        review, request = self._resolve(request)
        if review.message is not None:
            return review.message
        return await (self._inner_awrap(request, execute) if self._inner_awrap else execute(request))

    def _resolve(self, request: ToolCallRequest) -> tuple[Review, ToolCallRequest]:
        review = _REVIEWS.get({}).get(request.tool_call["id"])
        if review is None:  # not reviewed by this gate: never run it unchecked
            raise RuntimeError(f"tool call {request.tool_call['id']!r} reached ToolGate's executor unchecked")
        return review, apply_call(request, review.call, self.tools_by_name)


def apply_call(request: ToolCallRequest, call: dict, tools: dict[str, BaseTool]) -> ToolCallRequest:
    """Point the request at ``call`` (a reviewer's edit may name another tool)."""
    if call is request.tool_call or call == request.tool_call:
        return request
    if call["name"] == request.tool_call["name"]:
        return request.override(tool_call=call)
    return request.override(tool_call=call, tool=tools.get(call["name"]))
