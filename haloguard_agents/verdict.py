"""Scores, actions and decisions: the plain data every integration sees."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .content import Surface


class Action(StrEnum):
    """What happens to the content. Ordered: ``allow < log < redact < ask < deny``.

    ``max()`` of several actions is the strictest, which is how rules and the guard combine.
    """

    ALLOW = "allow"
    LOG = "log"
    REDACT = "redact"
    ASK = "ask"
    DENY = "deny"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        return self.rank < Action(other).rank

    def __le__(self, other: object) -> bool:
        return self.rank <= Action(other).rank

    def __gt__(self, other: object) -> bool:
        return self.rank > Action(other).rank

    def __ge__(self, other: object) -> bool:
        return self.rank >= Action(other).rank

    __hash__ = StrEnum.__hash__

    @property
    def blocks(self) -> bool:
        """True when the content must not pass as is without a human (``ask``) or at all."""
        return self >= Action.ASK


_RANK = {a: i for i, a in enumerate(Action)}


class Verdict(BaseModel):
    """A guard's scores for one content.

    ``unsafe`` is the overall probability in [0, 1]; ``policies`` maps policy ids to
    probabilities where the model gives them. For long text, ``span`` is the character range
    (in the normalized text) of the window that produced the scores: the worst one.
    """

    model_config = ConfigDict(frozen=True)

    unsafe: float = Field(ge=0.0, le=1.0)
    policies: dict[str, float] = {}
    span: tuple[int, int] | None = None
    windows: int = 1


class Reason(BaseModel):
    """Why an action was chosen: a rule hit, a policy score over its threshold, or an error."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["rule", "policy", "guard", "error"]
    action: Action
    detail: str
    rule: str | None = None
    policy: str | None = None
    score: float | None = None
    threshold: float | None = None


class Decision(BaseModel):
    """What the firewall decided for one content, and why. Every decision is audited.

    ``action`` is what integrations enforce. In shadow mode it is at most ``log`` while
    ``intended`` keeps what would have been enforced.
    """

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: float = Field(default_factory=time.time)
    surface: Surface
    action: Action
    intended: Action
    reasons: list[Reason] = []
    verdict: Verdict | None = None
    model: str | None = None
    latency_ms: float = 0.0
    error: str | None = None
    shadow: bool = False
    content_hash: str = ""
    source: str | None = None
    tool: str | None = None

    @property
    def allowed(self) -> bool:
        """True when the content may pass unchanged (``allow`` or ``log``)."""
        return self.action <= Action.LOG

    @property
    def top_policies(self) -> list[tuple[str, float]]:
        if self.verdict is None:
            return []
        return sorted(self.verdict.policies.items(), key=lambda kv: -kv[1])[:3]

    def explain(self) -> str:
        """One line for humans and for messages shown to the agent."""
        if not self.reasons:
            return f"{self.action.value}: no rule or policy matched"
        parts = [r.detail for r in sorted(self.reasons, key=lambda r: -r.action.rank)]
        return f"{self.intended.value}: " + "; ".join(parts)
