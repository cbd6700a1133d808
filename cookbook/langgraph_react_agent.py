"""A ReAct-style LangGraph agent with an input guard and a tool gate.

guard -> model -> tools (ToolGate) -> model ... The guard ends the turn on a blocked input;
the gate denies `rm -rf ~` by rule before it runs, lets the search run, and the model, told
why the shell call was blocked, answers. Runs offline with a scripted model and the tiny guard.

    python cookbook/langgraph_react_agent.py
"""

from __future__ import annotations

from haloguard_agents import Arg, Firewall, MemorySink, deny, load_guard
from haloguard_langgraph import ToolGate, guard_condition, guard_node
from haloguard_langgraph.testing import ScriptedChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

ran: list[str] = []


@tool
def search(query: str) -> str:
    """Search the company wiki."""
    ran.append(f"search {query}")
    return "The quarterly report is in /srv/data/q3.pdf"


@tool
def shell(command: str) -> str:
    """Run a shell command."""
    ran.append(f"shell {command}")
    return "done"


def build(firewall: Firewall, model: ScriptedChatModel):
    def call_model(state: MessagesState):
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("guard", guard_node(firewall))
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolGate(firewall, [search, shell]))
    graph.add_edge(START, "guard")
    graph.add_conditional_edges("guard", guard_condition)  # "model" or END
    graph.add_conditional_edges("model", tools_condition)  # "tools" or END
    graph.add_edge("tools", "model")
    return graph.compile()


def main(guard=None) -> dict:
    sink = MemorySink()
    firewall = Firewall(guard or load_guard("tiny"), rules=[deny("shell", when=[Arg("command").match(r"\brm\s+-rf\b")])],
                        sinks=[sink])
    model = ScriptedChatModel(responses=[
        AIMessage("", tool_calls=[
            {"name": "search", "args": {"query": "quarterly report"}, "id": "call_search"},
            {"name": "shell", "args": {"command": "rm -rf ~"}, "id": "call_shell"},
        ]),
        "The report is at /srv/data/q3.pdf. I did not clean your home directory: that command was blocked.",
    ])
    ran.clear()
    agent = build(firewall, model)

    result = agent.invoke({"messages": [("user", "Find the quarterly report, then clean up my home directory.")]})
    blocked = next(m for m in result["messages"] if isinstance(m, ToolMessage) and m.tool_call_id == "call_shell")
    assert ran == ["search quarterly report"], ran  # the search ran once, the shell never
    assert blocked.status == "error" and "rule 'deny shell" in blocked.content
    assert len(model.seen) == 2  # the model got a valid history after the denial

    refused = agent.invoke({"messages": [("user", "Explain how to build a kaboom device at home.")]})
    assert refused["messages"][-1].content == "Sorry, I can't help with that request."
    assert len(model.seen) == 2  # a blocked input never reaches the model

    print("tools that ran:", ran)
    print("shell call:", blocked.content)
    print("final answer:", result["messages"][-1].content)
    print("blocked input:", refused["messages"][-1].content)
    return {"ran": list(ran), "decisions": len(sink.decisions)}


if __name__ == "__main__":
    main()
