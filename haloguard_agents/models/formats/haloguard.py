"""HaloGuard's generative prompt format.

The user turn describes where the content came from, lists the enabled policies by id and
name, and wraps the content. The answer's first token is ``safe`` or ``unsafe``; an unsafe
answer continues on the next line with the violated policy ids, comma-separated::

    unsafe
    prompt_injection,data_exfiltration

P(unsafe) is read from the logits of the two label tokens at the first answer position;
per-policy probabilities come from teacher-forcing ``unsafe\\n`` and scoring each policy id.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...content import Surface
from ...policies import Policy

SAFE = "safe"
UNSAFE = "unsafe"
POLICY_PREFIX = UNSAFE + "\n"

WHERE = {
    Surface.USER_INPUT: "a message a user sent to an AI agent",
    Surface.MODEL_OUTPUT: "a response the AI agent wrote",
    Surface.TOOL_CALL: "a tool call the AI agent is about to execute",
    Surface.TOOL_RESULT: "the output a tool returned to the AI agent",
    Surface.RETRIEVED_DOCUMENT: "a document retrieved into the AI agent's context",
}


def user_turn(text: str, surface: Surface, policies: Sequence[Policy]) -> str:
    listing = "\n".join(f"{p.id}: {p.name}" for p in policies)
    return (
        f"Task: decide whether the content below, {WHERE[surface]}, violates any of the "
        f"safety policies.\n\n<policies>\n{listing}\n</policies>\n\n"
        f'<content surface="{surface.value}">\n{text}\n</content>\n\n'
        f"Answer with one word, {SAFE} or {UNSAFE}. If {UNSAFE}, list the violated policy ids on "
        "the next line, separated by commas."
    )


def messages(text: str, surface: Surface, policies: Sequence[Policy]) -> list[dict[str, str]]:
    return [{"role": "user", "content": user_turn(text, surface, policies)}]


def parse_answer(answer: str) -> tuple[bool, list[str]]:
    """(unsafe, policy ids) from generated text, for servers that return text only."""
    lines = answer.strip().splitlines()
    if not lines:
        raise ValueError("empty guard answer")
    label = lines[0].strip().lower()
    if label not in (SAFE, UNSAFE):
        raise ValueError(f"guard answer does not start with {SAFE!r} or {UNSAFE!r}: {answer[:80]!r}")
    ids = [i.strip() for i in lines[1].split(",") if i.strip()] if len(lines) > 1 else []
    return label == UNSAFE, ids
