"""Human approval: a risky but legitimate call pauses with `interrupt()`.

A rule asks for approval of transfers above 100. The agent pauses with a structured request
(tool, args, reasons, scores); it resumes from an `InMemorySaver` checkpoint on approve (the
transfer runs once) or on reject (it never runs). The firewall is asked once per call, even
though LangGraph re-runs the paused node on resume.

    python cookbook/langgraph_human_approval.py
"""

from __future__ import annotations

from haloguard_agents import Arg, Firewall, MemorySink, ask, load_guard
from haloguard_langgraph import HaloGuardMiddleware
from haloguard_langgraph.testing import ScriptedChatModel
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

ran: list[str] = []


@tool
def transfer_money(to: str, amount: float) -> str:
    """Send money from the user's account."""
    ran.append(f"transfer {amount} to {to}")
    return f"sent {amount} to {to}"


def run(firewall: Firewall, answer: dict, thread: str) -> tuple[dict, dict]:
    model = ScriptedChatModel(responses=[
        AIMessage("", tool_calls=[{"name": "transfer_money", "args": {"to": "landlord", "amount": 1200},
                                   "id": "call_rent"}]),
        "Done.",
    ])
    agent = create_agent(model, [transfer_money], middleware=[HaloGuardMiddleware(firewall)],
                         checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": thread}}
    paused = agent.invoke({"messages": [("user", "Pay this month's rent to my landlord.")]}, config)
    request = paused["__interrupt__"][0].value
    result = agent.invoke(Command(resume={"decisions": [answer]}), config)
    return request, result


def main(guard=None) -> dict:
    sink = MemorySink()
    firewall = Firewall(guard or load_guard("tiny"), rules=[ask("transfer_money", when=[Arg("amount").greater_than(100)])],
                        sinks=[sink])
    ran.clear()

    request, approved = run(firewall, {"type": "approve"}, "approve")
    action = request["action_requests"][0]
    assert action["name"] == "transfer_money" and action["reasons"][0]["rule"] == "ask transfer_money when amount above 100"
    assert ran == ["transfer 1200.0 to landlord"], ran
    assert [d.surface.value for d in sink.decisions].count("tool_call") == 1  # checked once across the resume

    _, rejected = run(firewall, {"type": "reject", "message": "Not this month."}, "reject")
    answer = next(m for m in rejected["messages"] if isinstance(m, ToolMessage))
    assert ran == ["transfer 1200.0 to landlord"], ran  # the rejected transfer never ran
    assert answer.status == "error" and "Not this month." in answer.content

    print("approval request:", action["description"].splitlines()[0])
    print("approved ->", next(m for m in approved["messages"] if isinstance(m, ToolMessage)).content)
    print("rejected ->", answer.content)
    return {"ran": list(ran)}


if __name__ == "__main__":
    main()
