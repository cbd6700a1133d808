"""Small helpers shared by the tests: scripted graphs, AI messages, an event-loop ticker."""

from __future__ import annotations

import asyncio
from typing import Any

from haloguard_langgraph import ToolGate, guard_condition, guard_node
from haloguard_langgraph.testing import ScriptedChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition


def ai(*tool_calls: tuple[str, dict, str], text: str = "") -> AIMessage:
    """An AIMessage proposing (name, args, id) tool calls."""
    return AIMessage(text, tool_calls=[{"name": n, "args": a, "id": i} for n, a, i in tool_calls])


class Ticker:
    """Measures the longest gap between ticks of a task on the event loop."""

    def __init__(self, period: float = 0.005):
        self.period, self.ticks, self.max_gap = period, 0, 0.0

    async def __aenter__(self):
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc):
        seen = self.ticks  # one more tick, so the last stretch of work is measured too
        while self.ticks == seen:
            await asyncio.sleep(self.period)
        self._task.cancel()

    async def _run(self):
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.period)
            now = loop.time()
            self.max_gap, last, self.ticks = max(self.max_gap, now - last), now, self.ticks + 1


def react(firewall, tools, responses: list[Any], *, guard: bool = False, checkpointer=None, **gate: Any):
    """guard? -> model -> ToolGate -> model ...; returns (compiled graph, scripted model)."""
    model = ScriptedChatModel(responses=responses)

    def call_model(state):
        return {"messages": [model.invoke(state["messages"])]}

    async def acall_model(state):
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", RunnableLambda(call_model, afunc=acall_model))
    graph.add_node("tools", ToolGate(firewall, tools, **gate))
    if guard:
        graph.add_node("guard", guard_node(firewall))
        graph.add_edge(START, "guard")
        graph.add_conditional_edges("guard", guard_condition)
    else:
        graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer), model
