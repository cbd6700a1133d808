"""The decision engine: permission rules + guard scores + thresholds -> ``Decision``.

Sync and async share one core: only the call to the guard differs (``score`` vs ``ascore``);
rule evaluation, thresholds, the lattice, shadow mode and auditing are the same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .audit import AuditSink, JsonlSink, LoggingSink
from .config import FirewallConfig
from .content import Content, Surface
from .models.base import Guard
from .permissions import ToolRule, evaluate
from .verdict import Action, Decision, Reason, Verdict

log = logging.getLogger("haloguard_agents")

MAX_CHARS = 5_000_000
"""Content longer than this is not scored; it takes the surface's ``on_error`` action."""


class Firewall:
    """Checks everything an agent reads and does; returns a ``Decision`` and audits it.

    ``guard`` may be None for a rules-only firewall. Rules given here are added to those in
    ``config.rules``.
    """

    def __init__(self, guard: Guard | None = None, rules: Sequence[ToolRule] = (),
                 config: FirewallConfig | None = None, *, sinks: Sequence[AuditSink] | None = None):
        self.guard = guard
        self.config = config or FirewallConfig()
        self.rules: list[ToolRule] = [*self.config.rules, *rules]
        self.sinks: list[AuditSink] = list(sinks) if sinks is not None else _default_sinks(self.config)

    @classmethod
    def from_config(cls, config: str | Path | dict[str, Any] | FirewallConfig, **kw: Any) -> Firewall:
        """Build the guard named in the configuration and the firewall around it."""
        from .models import load_guard

        cfg = config if isinstance(config, FirewallConfig) else FirewallConfig.load(config)
        guard = load_guard(cfg.guard.model, device=cfg.guard.device, local_files_only=cfg.guard.local_files_only)
        return cls(guard, config=cfg, **kw)

    @property
    def model_id(self) -> str | None:
        return getattr(self.guard, "model_id", None)

    def threshold(self, surface: Surface) -> float:
        """The surface's threshold: the configured one, else the guard's recommendation, else 0.5."""
        sc = self.config.surface(surface)
        if "threshold" in sc.model_fields_set:
            return sc.threshold
        return (getattr(self.guard, "thresholds", None) or {}).get(surface, sc.threshold)

    # -- the core -------------------------------------------------------------------------

    def check_many(self, contents: Sequence[Content]) -> list[Decision]:
        start = time.perf_counter()
        plan = self._plan(contents)
        verdicts: dict[int, Verdict] = {}
        error: Exception | None = None
        if plan.todo:
            try:
                verdicts = self._collect(plan, self.guard.score([contents[i] for i in plan.todo]))  # type: ignore[union-attr]
            except Exception as e:  # noqa: BLE001 - every failure becomes an on_error decision
                error = e
        return self._finish(contents, plan, verdicts, error, start)

    async def acheck_many(self, contents: Sequence[Content]) -> list[Decision]:
        start = time.perf_counter()
        plan = self._plan(contents)
        verdicts: dict[int, Verdict] = {}
        error: Exception | None = None
        if plan.todo:
            try:
                verdicts = self._collect(plan, await self.guard.ascore([contents[i] for i in plan.todo]))  # type: ignore[union-attr]
            except Exception as e:  # noqa: BLE001
                error = e
        return self._finish(contents, plan, verdicts, error, start)

    def check(self, content: Content) -> Decision:
        return self.check_many([content])[0]

    async def acheck(self, content: Content) -> Decision:
        return (await self.acheck_many([content]))[0]

    # -- one method per surface -------------------------------------------------------------

    def check_input(self, text: Any, **kw: Any) -> Decision:
        return self.check(Content(Surface.USER_INPUT, text, **kw))

    def check_output(self, text: Any, **kw: Any) -> Decision:
        return self.check(Content(Surface.MODEL_OUTPUT, text, **kw))

    def check_tool_call(self, name: str, args: Any, **kw: Any) -> Decision:
        return self.check(Content.tool_call(name, args, **kw))

    def check_tool_result(self, result: Any, *, tool: str | None = None, **kw: Any) -> Decision:
        return self.check(Content(Surface.TOOL_RESULT, result, source=tool, **kw))

    def check_document(self, text: Any, *, source: str | None = None, **kw: Any) -> Decision:
        return self.check(Content(Surface.RETRIEVED_DOCUMENT, text, source=source, **kw))

    async def acheck_input(self, text: Any, **kw: Any) -> Decision:
        return await self.acheck(Content(Surface.USER_INPUT, text, **kw))

    async def acheck_output(self, text: Any, **kw: Any) -> Decision:
        return await self.acheck(Content(Surface.MODEL_OUTPUT, text, **kw))

    async def acheck_tool_call(self, name: str, args: Any, **kw: Any) -> Decision:
        return await self.acheck(Content.tool_call(name, args, **kw))

    async def acheck_tool_result(self, result: Any, *, tool: str | None = None, **kw: Any) -> Decision:
        return await self.acheck(Content(Surface.TOOL_RESULT, result, source=tool, **kw))

    async def acheck_document(self, text: Any, *, source: str | None = None, **kw: Any) -> Decision:
        return await self.acheck(Content(Surface.RETRIEVED_DOCUMENT, text, source=source, **kw))

    # -- shared steps ---------------------------------------------------------------------

    def _plan(self, contents: Sequence[Content]) -> _Plan:
        plan = _Plan()
        for i, content in enumerate(contents):
            reasons = self._rule_reasons(content)
            surface = self.config.surface(content.surface)
            if len(content.text) > MAX_CHARS:
                reasons.append(Reason(kind="error", action=surface.on_error,
                                      detail=f"content too large to score ({len(content.text):,} characters "
                                             f"> {MAX_CHARS:,}); on_error={surface.on_error.value}"))
            elif self.guard is not None and surface.enabled and not any(r.action is Action.DENY for r in reasons):
                plan.todo.append(i)  # a rule's deny is final: the guard cannot make it stricter
            plan.reasons.append(reasons)
        return plan

    def _rule_reasons(self, content: Content) -> list[Reason]:
        if content.surface is not Surface.TOOL_CALL or "tool" not in content.meta:
            return []
        return evaluate(self.rules, content.meta["tool"], content.meta.get("args"), self.config.default_tool_action)

    @staticmethod
    def _collect(plan: _Plan, verdicts: Sequence[Verdict]) -> dict[int, Verdict]:
        if len(verdicts) != len(plan.todo):
            raise RuntimeError(f"guard returned {len(verdicts)} verdicts for {len(plan.todo)} contents")
        return dict(zip(plan.todo, verdicts))

    def _finish(self, contents: Sequence[Content], plan: _Plan, verdicts: dict[int, Verdict],
                error: Exception | None, start: float) -> list[Decision]:
        latency = (time.perf_counter() - start) * 1000
        decisions = []
        for i, content in enumerate(contents):
            surface = self.config.surface(content.surface)
            reasons = list(plan.reasons[i])
            verdict = verdicts.get(i)
            failed = error is not None and i in plan.todo
            if failed:
                reasons.append(Reason(kind="error", action=surface.on_error,
                                      detail=f"guard failed ({type(error).__name__}: {error}); "
                                             f"on_error={surface.on_error.value}"))
            elif verdict is not None:
                reasons += self._guard_reasons(content.surface, verdict)
            intended = max((r.action for r in reasons), default=Action.ALLOW)
            action = min(intended, Action.LOG) if self.config.shadow else intended
            decisions.append(Decision(
                surface=content.surface, action=action, intended=intended, reasons=reasons,
                verdict=verdict, model=self.model_id, latency_ms=latency,
                error=f"{type(error).__name__}: {error}" if failed else next(
                    (r.detail for r in reasons if r.kind == "error"), None),
                shadow=self.config.shadow, content_hash=content.key, source=content.source,
                tool=content.meta.get("tool"),
            ))
        for decision, content in zip(decisions, contents):
            self._audit(decision, content)
        return decisions

    def _guard_reasons(self, surface: Surface, verdict: Verdict) -> list[Reason]:
        """Policy scores against their thresholds; the overall score when no policy explains it."""
        sc = self.config.surface(surface)
        surface_threshold = self.threshold(surface)
        reasons = []
        for policy, score in sorted(verdict.policies.items(), key=lambda kv: -kv[1]):
            pc = self.config.policy(policy)
            threshold = pc.threshold_for(surface, surface_threshold)
            if pc.enabled and score >= threshold:
                detail = f"policy {policy} {score:.2f} >= {_as_set(threshold)}"
                reasons.append(Reason(kind="policy", action=pc.action or sc.action, policy=policy, score=score,
                                      threshold=threshold, detail=detail))
        if reasons:
            return reasons
        # When the model attributes its score to a policy with settings of its own (disabled,
        # or a threshold of its own), those settings were applied above and are final.
        top = max(verdict.policies, key=verdict.policies.__getitem__, default=None)
        if top is not None and top in self.config.policies:
            pc = self.config.policies[top]
            if not pc.enabled or pc.threshold is not None or surface in pc.surfaces:
                return []
        if verdict.unsafe >= surface_threshold:
            return [Reason(kind="guard", action=sc.action, score=verdict.unsafe, threshold=surface_threshold,
                           detail=f"unsafe {verdict.unsafe:.2f} >= {_as_set(surface_threshold)}")]
        if sc.ask_threshold is not None and verdict.unsafe >= sc.ask_threshold:
            band = f"[{_as_set(sc.ask_threshold)}, {_as_set(surface_threshold)})"
            return [Reason(kind="guard", action=Action.ASK, score=verdict.unsafe, threshold=sc.ask_threshold,
                           detail=f"unsafe {verdict.unsafe:.2f} in the ask band {band}")]
        return []

    def _audit(self, decision: Decision, content: Content) -> None:
        for sink in self.sinks:
            try:
                sink.emit(decision, content)
            except Exception:  # noqa: BLE001 - auditing must never break the agent
                log.exception("audit sink %r failed to record decision %s", sink, decision.id)


class _Plan:
    """Per batch: rule reasons for every content, and which contents the guard must score."""

    __slots__ = ("reasons", "todo")

    def __init__(self) -> None:
        self.reasons: list[list[Reason]] = []
        self.todo: list[int] = []


def _as_set(threshold: float) -> str:
    """A threshold as set: 0.50, 0.955 (two decimals would print 0.955 as 0.95)."""
    return f"{threshold:.2f}" if round(threshold, 2) == threshold else f"{threshold:g}"


def _default_sinks(config: FirewallConfig) -> list[AuditSink]:
    sinks: list[AuditSink] = []
    if config.audit.log:
        sinks.append(LoggingSink())
    if config.audit.jsonl:
        sinks.append(JsonlSink(config.audit.jsonl, include_text=config.audit.include_text))
    return sinks
