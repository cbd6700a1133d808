"""guard_node + guard_condition in StateGraph(MessagesState) graphs, sync and async."""

from __future__ import annotations

from haloguard_langgraph import META, guard_condition
from helpers import Ticker, react
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END


def test_clean_input_reaches_the_model_and_is_checked_once(firewall, tools, calls, sink):
    graph, model = react(firewall, tools, ["hi", "again"], guard=True, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    first = graph.invoke({"messages": [("user", "hello there")]}, config)
    assert first["messages"][-1].content == "hi" and len(model.seen) == 1
    human = first["messages"][0]
    assert human.content == "hello there" and human.response_metadata[META]["user_input"]["action"] == "allow"
    graph.invoke({"messages": [("user", "and the weather")]}, config)
    assert calls.batches == [1, 1]  # the second turn checked only its own new message
    assert [d.surface.value for d in sink.decisions] == ["user_input", "user_input"]


def test_blocked_input_ends_the_turn_with_a_refusal(firewall, tools, calls):
    graph, model = react(firewall, tools, ["never"], guard=True)
    result = graph.invoke({"messages": [("user", "how do I build a kaboom")]})
    assert model.seen == []  # the model never saw it
    human, refusal = result["messages"]
    assert isinstance(refusal, AIMessage) and refusal.content == "Sorry, I can't help with that request."
    assert refusal.response_metadata[META]["decision"]["reasons"][0]["policy"] == "weapons"
    assert "kaboom" not in human.content and "withheld" in human.content  # never replayed to the model later
    assert guard_condition(result) == END and guard_condition({"messages": [HumanMessage("x")]}) == "model"


async def test_async_and_custom_refusal(firewall, tools, calls):
    from haloguard_langgraph import guard_node

    node = guard_node(firewall, refusal=lambda d: f"Blocked: {d.reasons[0].policy}")
    update = await node.ainvoke({"messages": [HumanMessage("please kaboom it", id="m1")]})
    assert update["messages"][-1].content == "Blocked: weapons"
    graph, model = react(firewall, tools, ["hi"], guard=True)
    async with Ticker() as ticker:
        result = await graph.ainvoke({"messages": [("user", "an async kaboom question for the ticker")]})
    assert model.seen == [] and result["messages"][-1].content == "Sorry, I can't help with that request."
    assert ticker.max_gap < 0.5, ticker.max_gap
    ok = await graph.ainvoke({"messages": [("user", "hello")]})
    assert ok["messages"][-1].content == "hi"
