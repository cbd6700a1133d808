"""Decision records: every decision, errors included, goes to every sink."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

from .content import Content
from .verdict import Action, Decision

logger = logging.getLogger("haloguard_agents.audit")


@runtime_checkable
class AuditSink(Protocol):
    def emit(self, decision: Decision, content: Content) -> None: ...


def record(decision: Decision, content: Content, include_text: bool = False) -> dict:
    """The JSON-ready record of a decision."""
    data = decision.model_dump(mode="json")
    data["explanation"] = decision.explain()
    if include_text:
        data["text"] = content.text
    return data


class LoggingSink:
    """Python logging: INFO for allow/log, WARNING for everything stricter."""

    def __init__(self, log: logging.Logger = logger):
        self.log = log

    def emit(self, decision: Decision, content: Content) -> None:
        level = logging.INFO if decision.intended <= Action.LOG else logging.WARNING
        if self.log.isEnabledFor(level):
            self.log.log(level, "%s %s %s (%.1f ms)%s", decision.surface.value, decision.action.value,
                         decision.explain(), decision.latency_ms, " [shadow]" if decision.shadow else "",
                         extra={"haloguard_decision": decision.model_dump(mode="json")})


class JsonlSink:
    """An append-only JSONL file, one decision per line, flushed as it is written."""

    def __init__(self, path: str | Path, include_text: bool = False):
        self.path = Path(path)
        self.include_text = include_text
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def emit(self, decision: Decision, content: Content) -> None:
        line = json.dumps(record(decision, content, self.include_text), ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)


class MemorySink:
    """Keeps decisions in a list: for tests, notebooks and the demo."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def emit(self, decision: Decision, content: Content) -> None:
        self.decisions.append(decision)
