"""Guarded tools for LlamaIndex agents (``FunctionAgent``, ``ReActAgent``, ``AgentWorkflow``).

A guarded tool is a ``FunctionTool`` that asks for the workflow ``Context``, so agents hand it
over on every call. Each call is checked before it runs (permission rules, then the guard) and
its output is scored as ``tool_result`` before the agent reads it. A denied call returns an
error ``ToolOutput`` saying why, so the agent can recover. ``ask`` pauses the workflow with a
``ToolApprovalRequest`` (an ``InputRequiredEvent``) and waits for a ``HumanResponseEvent``
carrying the same ``approval_id``; without a workflow context (a direct sync call) ``ask`` denies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from haloguard_agents import Action, Content, Decision, Firewall, Surface
from llama_index.core.tools import BaseTool, FunctionTool, ToolOutput
from llama_index.core.tools.types import AsyncBaseTool, adapt_to_async_tool
from llama_index.core.workflow import HumanResponseEvent, InputRequiredEvent

from .events import acheck, check

try:  # the control-flow exception a waiting step raises (llama-index-workflows >= 2.9)
    from workflows.runtime.types.results import WaitingForEvent as _Pause
except ImportError:  # pragma: no cover
    _Pause = None  # type: ignore[assignment,misc]

APPROVE = {"y", "yes", "approve", "approved", "allow", "ok", "true"}
_CTX = "haloguard_ctx"
_COMPONENT = "GuardedTool"
_NO_CONTEXT = "approval needs a workflow context"


class ToolApprovalRequest(InputRequiredEvent):
    """Written to the event stream when a call needs a human: answer with ``approve()`` or ``reject()``."""

    approval_id: str
    tool_name: str
    tool_kwargs: dict[str, Any]
    reason: str
    decision: dict[str, Any]

    def approve(self) -> HumanResponseEvent:
        return HumanResponseEvent(response="approve", approved=True, approval_id=self.approval_id)

    def reject(self) -> HumanResponseEvent:
        return HumanResponseEvent(response="reject", approved=False, approval_id=self.approval_id)


class GuardedTool(FunctionTool):
    """A tool whose calls are checked before they run and whose results are scored before the agent reads them."""

    def __init__(self, tool: BaseTool, firewall: Firewall, *, approval_timeout: float | None = 2000):
        self.tool, self.firewall, self.approval_timeout = tool, firewall, approval_timeout
        self._passes_ctx = isinstance(tool, FunctionTool) and tool.requires_context and tool.ctx_param_name is not None
        super().__init__(fn=self.call, async_fn=self.acall, metadata=tool.metadata)
        # Agents pass the workflow Context only to FunctionTools that declare they need it.
        self.requires_context = True
        self.ctx_param_name = tool.ctx_param_name if self._passes_ctx else _CTX  # type: ignore[union-attr]

    @property
    def name(self) -> str:
        return self.metadata.get_name()

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        _, call_args, kwargs = self._split(args, kwargs)
        decision = check(self.firewall, [Content.tool_call(self.name, call_args)], _COMPONENT)[0]
        if not decision.allowed:
            return self._denied(decision, call_args, _NO_CONTEXT if decision.action is Action.ASK else "")
        output = self._run(args, kwargs)
        return self._screened(output, check(self.firewall, [self._result(output)], _COMPONENT)[0])

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        ctx, call_args, kwargs = self._split(args, kwargs)
        decision = await self._adecide(ctx, Content.tool_call(self.name, call_args))
        if not decision.allowed:
            refusal = await self._approval(ctx, decision, call_args) if decision.action is Action.ASK else ""
            if refusal is not None:
                return self._denied(decision, call_args, refusal)
        output = await self._arun(args, kwargs)
        return self._screened(output, (await acheck(self.firewall, [self._result(output)], _COMPONENT))[0])

    # -- steps ----------------------------------------------------------------------------

    def _split(self, args: tuple, kwargs: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
        """(workflow context, the arguments the model chose, the kwargs for the wrapped tool)."""
        ctx = kwargs.get(self.ctx_param_name)
        chosen = {k: v for k, v in kwargs.items() if k != self.ctx_param_name}
        if args:
            chosen = {"input": args[0]} | chosen if len(args) == 1 else {"args": list(args)} | chosen
        return ctx, chosen, kwargs if self._passes_ctx else {k: v for k, v in kwargs.items() if k != _CTX}

    async def _adecide(self, ctx: Any, content: Content) -> Decision:
        """Check once: a workflow replays the whole step after a human answers, so a pending
        ``ask`` decision is kept in the context's store and reused instead of re-checked."""
        key = f"haloguard:{content.key}"
        if ctx is not None and (kept := await ctx.store.get(key, default=None)):
            await ctx.store.set(key, None)
            return Decision.model_validate(kept)
        decision = (await acheck(self.firewall, [content], _COMPONENT))[0]
        if ctx is not None and decision.action is Action.ASK:
            await ctx.store.set(key, decision.model_dump(mode="json"))
        return decision

    async def _approval(self, ctx: Any, decision: Decision, call_args: Any) -> str | None:
        """Ask a human through the workflow: None when approved, else why the call is refused."""
        if ctx is None:
            return _NO_CONTEXT
        request = ToolApprovalRequest(
            prefix=f"Allow {self.name}? {decision.explain()}", approval_id=decision.content_hash[:16],
            tool_name=self.name, tool_kwargs=call_args, reason=decision.explain(),
            decision=decision.model_dump(mode="json"))
        try:
            answer = await ctx.wait_for_event(HumanResponseEvent, waiter_event=request, timeout=self.approval_timeout,
                                              requirements={"approval_id": request.approval_id})
        except asyncio.TimeoutError:
            return "no approval before the timeout"
        approved = answer.get("approved")
        if not isinstance(approved, bool):
            approved = str(answer.get("response", "")).strip().lower() in APPROVE
        return None if approved else "a human rejected the call"

    def _run(self, args: tuple, kwargs: dict[str, Any]) -> ToolOutput:
        call = self.tool.call if isinstance(self.tool, AsyncBaseTool) else self.tool
        try:
            return call(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the error text is scored like any result
            return self._error(e, kwargs)

    async def _arun(self, args: tuple, kwargs: dict[str, Any]) -> ToolOutput:
        try:
            return await adapt_to_async_tool(self.tool).acall(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            return self._error(e, kwargs)

    def _error(self, error: Exception, kwargs: dict[str, Any]) -> ToolOutput:
        if _Pause is not None and isinstance(error, _Pause):
            raise error  # the wrapped tool itself is waiting for an event
        return ToolOutput(tool_name=self.name, content=str(error), raw_input=self._public(kwargs),
                          raw_output=str(error), is_error=True, exception=error)

    def _result(self, output: ToolOutput) -> Content:
        """What the agent reads; a list or dict it reads as ``str()`` is scored as the structure,
        so a classifier reads its records apart."""
        raw = output.raw_output
        structured = isinstance(raw, (Mapping, list, tuple)) and output.content == str(raw)
        return Content(Surface.TOOL_RESULT, raw if structured else output.content, source=self.name)

    def _screened(self, output: ToolOutput, decision: Decision) -> ToolOutput:
        return output if decision.allowed else self._withheld(decision, output)

    def _denied(self, decision: Decision, call_args: Any, why: str) -> ToolOutput:
        text = f"Tool call to {self.name} was denied by the safety firewall and did not run: {decision.explain()}"
        return self._refusal(text + (f" ({why})" if why else ""), decision, call_args)

    def _withheld(self, decision: Decision, output: ToolOutput) -> ToolOutput:
        text = f"The result of {self.name} was withheld by the safety firewall: {decision.explain()}"
        return self._refusal(text, decision, output.raw_input)

    def _refusal(self, text: str, decision: Decision, raw_input: Any) -> ToolOutput:
        return ToolOutput(tool_name=self.name, content=text, raw_input=self._public(raw_input),
                          raw_output={"haloguard": decision.model_dump(mode="json")}, is_error=True)

    def _public(self, kwargs: Any) -> dict[str, Any]:
        """Tool inputs without the workflow context, which is not serializable."""
        if not isinstance(kwargs, dict):
            return {"input": kwargs}
        return {k: v for k, v in kwargs.items() if k != self.ctx_param_name}


def guard_tool(tool: BaseTool | Callable[..., Any], firewall: Firewall, **kwargs: Any) -> GuardedTool:
    """Wrap one tool (a plain function becomes a ``FunctionTool`` first)."""
    if not isinstance(tool, BaseTool):
        tool = FunctionTool.from_defaults(tool)
    return tool if isinstance(tool, GuardedTool) else GuardedTool(tool, firewall, **kwargs)


def guard_tools(tools: Iterable[BaseTool | Callable[..., Any]], firewall: Firewall, **kwargs: Any) -> list[GuardedTool]:
    """Wrap every tool of an agent."""
    return [guard_tool(tool, firewall, **kwargs) for tool in tools]
