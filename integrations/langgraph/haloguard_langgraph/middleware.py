"""``HaloGuardMiddleware``: the firewall as LangChain v1 agent middleware for ``create_agent``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from haloguard_agents import Content, Decision, Firewall, Surface
from langchain.agents.middleware import AgentMiddleware, AgentState, hook_config
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.errors import GraphBubbleUp, is_invalid_resume
from langgraph.prebuilt.tool_node import TOOL_CALL_ERROR_TEMPLATE, ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command

from ._core import (
    DEFAULT_DECISIONS,
    DEFAULT_REFUSAL,
    META,
    Checker,
    DecisionType,
    Review,
    Steps,
    arun,
    call_content,
    record,
    review_calls,
    run,
    screen_input,
    screen_results,
    tool_messages,
)
from .nodes import apply_call


class HaloGuardMiddleware(AgentMiddleware):
    """Checks what the agent reads and does, at the hooks ``create_agent`` offers.

    * ``before_model``: new user messages; a blocked one ends the run with a refusal.
    * ``after_model``: the model's text and every proposed tool call, in one batch, before
      the tool node. A blocked answer is replaced by a refusal. Denied calls get an error
      ``ToolMessage``; calls that ask pause with the same ``interrupt()`` as ``ToolGate``
      (``HumanInTheLoopMiddleware``'s batched format). The outcome of each call is recorded
      in the ``AIMessage``'s ``response_metadata["haloguard"]``.
    * ``wrap_tool_call``: runs the reviewed (or edited) call, checking it first if
      ``after_model`` did not; scores the result and withholds a poisoned one. A tool that
      raises answers with an error ``ToolMessage`` (``handle_tool_errors=False`` lets the
      exception propagate, as ``create_agent`` does by default).
    """

    def __init__(self, firewall: Firewall, *, refusal: str | Callable[[Decision], str] = DEFAULT_REFUSAL,
                 allowed_decisions: Sequence[DecisionType] = DEFAULT_DECISIONS, check_output: bool = True,
                 handle_tool_errors: bool = True):
        super().__init__()
        self.checker = Checker(firewall)
        self.refusal = refusal
        self.allowed_decisions = tuple(allowed_decisions)
        self.check_output = check_output
        self.handle_tool_errors = handle_tool_errors

    # -- before_model: user input ---------------------------------------------------------

    def _input(self, state: AgentState) -> Steps[dict[str, Any] | None]:
        updates, blocked = yield from screen_input(state["messages"], self.refusal)
        if not updates:
            return None
        return {"messages": updates, "jump_to": "end"} if blocked else {"messages": updates}

    @hook_config(can_jump_to=["end"])
    def before_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        return run(self._input(state), self.checker)

    @hook_config(can_jump_to=["end"])
    async def abefore_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        return await arun(self._input(state), self.checker)

    # -- after_model: model output and proposed tool calls ----------------------------------

    def _output(self, state: AgentState) -> Steps[dict[str, Any] | None]:
        ai = state["messages"][-1] if state["messages"] else None
        if not isinstance(ai, AIMessage) or META in ai.response_metadata:
            return None
        text = str(ai.text) if self.check_output else ""
        contents = [Content(Surface.MODEL_OUTPUT, text, meta={"message_id": ai.id})] if text.strip() else []
        decisions = yield contents + [call_content(c) for c in ai.tool_calls]
        meta: dict[str, Any] = {}
        if contents:
            output, decisions = decisions[0], decisions[1:]
            meta["model_output"] = record(output)
            if not output.allowed:  # drop the answer and its calls: nothing of it runs or shows
                refusal = self.refusal(output) if callable(self.refusal) else self.refusal
                return {"messages": [AIMessage(refusal, id=ai.id, response_metadata={META: {**meta, "refusal": True}})],
                        "jump_to": "end"}
        reviews = yield from review_calls(ai.tool_calls, decisions, self.allowed_decisions)
        if reviews:
            meta["tool_calls"] = {r.call["id"]: {**r.meta(), "key": call_content(c).key, "call": r.call}
                                  for r, c in zip(reviews, ai.tool_calls)}
        ai = ai.model_copy(update={"response_metadata": {**ai.response_metadata, META: meta}})
        return {"messages": [ai, *(r.message for r in reviews if r.message is not None)]}

    @hook_config(can_jump_to=["end"])
    def after_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        return run(self._output(state), self.checker, durable=True)

    @hook_config(can_jump_to=["end"])
    async def aafter_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        return await arun(self._output(state), self.checker, durable=True)

    # -- wrap_tool_call: the call as reviewed, and its result --------------------------------

    def _review(self, request: ToolCallRequest) -> Steps[Review]:
        call = request.tool_call
        seen = _reviewed(request.state, call)
        if seen is not None:
            return seen
        decisions = yield [call_content(call)]
        return (yield from review_calls([call], decisions, self.allowed_decisions))[0]

    def wrap_tool_call(self, request: ToolCallRequest,
                       handler: Callable[[ToolCallRequest], ToolMessage | Command]) -> ToolMessage | Command:
        review = run(self._review(request), self.checker, durable=True)
        if review.message is not None:
            return review.message
        request = apply_call(request, review.call, _tools(request))
        try:
            result = handler(request)
        except Exception as e:  # noqa: BLE001 - the call still gets its ToolMessage
            result = self._error(e, request)
        run(screen_results(tool_messages(result), {review.call["id"]: review}), self.checker)
        return result

    async def awrap_tool_call(self, request: ToolCallRequest,
                              handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command]]
                              ) -> ToolMessage | Command:
        review = await arun(self._review(request), self.checker, durable=True)
        if review.message is not None:
            return review.message
        request = apply_call(request, review.call, _tools(request))
        try:
            result = await handler(request)
        except Exception as e:  # noqa: BLE001
            result = self._error(e, request)
        await arun(screen_results(tool_messages(result), {review.call["id"]: review}), self.checker)
        return result

    def _error(self, error: Exception, request: ToolCallRequest) -> ToolMessage:
        if not self.handle_tool_errors or isinstance(error, GraphBubbleUp) or is_invalid_resume(error):
            raise error
        call = request.tool_call
        return ToolMessage(TOOL_CALL_ERROR_TEMPLATE.format(error=repr(error)), name=call["name"],
                           tool_call_id=call["id"], status="error")


def _reviewed(state: Any, call: dict) -> Review | None:
    """The review ``after_model`` recorded for this very call (same id and content), if any."""
    messages = state.get("messages", []) if isinstance(state, dict) else getattr(state, "messages", [])
    for m in reversed(messages):
        if isinstance(m, AIMessage) and any(c["id"] == call["id"] for c in m.tool_calls):
            seen = ((m.response_metadata.get(META) or {}).get("tool_calls") or {}).get(call["id"])
            if not seen or seen.get("key") != call_content(call).key:
                return None
            runs = seen["review"] in ("allowed", "approved", "edited")
            message = None if runs else ToolMessage(
                f"HaloGuard: this call was {seen['review']} and did not run.", name=call["name"],
                tool_call_id=call["id"], status="error")
            return Review(seen["call"], seen["review"], seen["tool_call"], message)
    return None


def _tools(request: ToolCallRequest) -> dict[str, Any]:
    return {t.name: t for t in getattr(request.runtime, "tools", None) or []}
