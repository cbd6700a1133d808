"""HaloGuardMiddleware in real create_agent agents with a scripted model."""

from __future__ import annotations

from haloguard_langgraph import META, HaloGuardMiddleware
from haloguard_langgraph.testing import ScriptedChatModel, check_history
from helpers import Ticker, ai
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

USER = {"messages": [("user", "help me")]}


def agent(firewall, tools, responses, **kw):
    model = ScriptedChatModel(responses=responses)
    return create_agent(model, tools, middleware=[HaloGuardMiddleware(firewall)], **kw), model


def answers(result) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in result["messages"] if isinstance(m, ToolMessage)}


def test_unsafe_calls_never_run_and_the_agent_recovers(firewall, tools, ran, calls):
    app, model = agent(firewall, tools, [
        ai(("shell", {"command": "rm -rf ~"}, "c1"), ("send_email", {"to": "x@evil.example", "body": "hi"}, "c2"),
           ("search", {"query": "backup policy"}, "c3")),
        "I could not do that, but here is the backup policy.",
    ])
    result = app.invoke(USER)
    out = answers(result)
    assert ran == [("search", "backup policy")]
    assert "rule 'deny shell" in out["c1"].content and "rule 'deny send_email" in out["c2"].content
    assert out["c3"].content == "results for backup policy"
    assert len(model.seen) == 2 and result["messages"][-1].content.startswith("I could not")
    check_history(result["messages"])
    assert calls.batches[:2] == [1, 3]  # the input, then all three calls in one batch
    proposal = next(m for m in result["messages"] if isinstance(m, AIMessage) and m.tool_calls)
    assert set(proposal.response_metadata[META]["tool_calls"]) == {"c1", "c2", "c3"}
    assert out["c3"].response_metadata[META]["tool_result"]["action"] == "allow"


def test_blocked_input_and_blocked_output(firewall, tools, ran):
    app, model = agent(firewall, tools, ["never"])
    result = app.invoke({"messages": [("user", "make a kaboom")]})
    assert model.seen == [] and result["messages"][-1].content == "Sorry, I can't help with that request."

    app, model = agent(firewall, tools, [ai(("search", {"query": "x"}, "c1"), text="Sure: here is how to kaboom")])
    result = app.invoke(USER)
    last = result["messages"][-1]
    assert last.content == "Sorry, I can't help with that request." and not last.tool_calls
    assert last.response_metadata[META]["model_output"]["action"] == "deny"
    assert ran == []  # the calls of a blocked answer never run
    check_history(result["messages"])


def test_approve_and_reject_with_checkpointer(firewall, tools, ran, calls, sink):
    app, _ = agent(firewall, tools, [ai(("transfer_money", {"to": "bob", "amount": 500}, "c1")), "ok"],
                   checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "a"}}
    paused = app.invoke(USER, config)
    request = paused["__interrupt__"][0].value["action_requests"][0]
    assert request["name"] == "transfer_money" and request["reasons"][0]["kind"] == "rule"
    guard_calls = calls.guard
    result = app.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
    assert ran == [("transfer_money", ("bob", 500.0))]
    # After the resume: one call for the result and one for the final answer, none for the call.
    assert calls.guard == guard_calls + 2
    assert [d.surface.value for d in sink.decisions].count("tool_call") == 1
    assert answers(result)["c1"].response_metadata[META]["review"] == "approved"

    app, _ = agent(firewall, tools, [ai(("transfer_money", {"to": "eve", "amount": 999}, "c1")), "ok"],
                   checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "r"}}
    app.invoke(USER, config)
    result = app.invoke(Command(resume={"decisions": [{"type": "reject"}]}), config)
    assert ran == [("transfer_money", ("bob", 500.0))]  # eve's transfer never ran
    assert answers(result)["c1"].status == "error" and result["messages"][-1].content == "ok"


async def test_async_edit_poisoned_result_and_event_loop(firewall, tools, ran, calls, sink):
    app, model = agent(firewall, tools, [
        ai(("transfer_money", {"to": "bob", "amount": 500}, "c1"), ("fetch_page", {"url": "https://a.example"}, "c2")),
        "ok",
    ], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "x"}}
    async with Ticker() as ticker:
        chunks = [c async for c in app.astream(USER, config, stream_mode="updates")]
        assert any("__interrupt__" in c for c in chunks)
        edit = {"type": "edit", "edited_action": {"name": "transfer_money", "args": {"to": "bob", "amount": 80}}}
        result = await app.ainvoke(Command(resume={"decisions": [edit]}), config)
    out = answers(result)
    assert sorted(ran) == [("fetch_page", "https://a.example"), ("transfer_money", ("bob", 80.0))]
    assert out["c1"].response_metadata[META]["review"] == "edited"
    assert "withheld" in out["c2"].content and all("hijack" not in str(m.content) for m in model.seen[-1])
    assert [d.surface.value for d in sink.decisions].count("tool_call") == 3  # two calls, then the edit
    assert ticker.max_gap < 0.5, ticker.max_gap


def test_wrap_tool_call_checks_calls_after_model_did_not_review(firewall, tools, ran):
    """A call that reaches the tool node unreviewed (or changed since) is checked there."""
    middleware = HaloGuardMiddleware(firewall)
    shell = next(t for t in tools if t.name == "shell")

    def request(command):
        call = {"name": "shell", "args": {"command": command}, "id": "c9", "type": "tool_call"}
        return ToolCallRequest(tool_call=call, tool=shell, state={"messages": []}, runtime=None)

    def handler(req):
        return ToolMessage(shell.invoke(req.tool_call["args"]), tool_call_id=req.tool_call["id"])

    assert middleware.wrap_tool_call(request("rm -rf ~"), handler).status == "error" and ran == []
    assert middleware.wrap_tool_call(request("ls"), handler).content == "ok" and ran == [("shell", "ls")]


def test_bad_inputs_never_crash_the_agent(firewall, tools, ran):
    app, model = agent(firewall, tools, [
        ai(("broken", {"query": "boom"}, "c1"), ("dump", {"kind": "huge"}, "c2"),
           ("configure", {"options": {"nested": [{"deep": None}, 3.5]}, "tags": [1, "two"]}, "c3")),
        "ok",
    ])
    result = app.invoke(USER)
    out = answers(result)
    assert out["c1"].status == "error" and "backend exploded" in out["c1"].content
    assert out["c2"].status == "error" and "too large to score" in out["c2"].content
    assert out["c3"].content == "configured"
    assert len(model.seen) == 2 and result["messages"][-1].content == "ok"
    check_history(result["messages"])
