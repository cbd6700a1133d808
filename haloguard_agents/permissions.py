"""Deterministic tool rules: allow / deny / ask by tool-name glob and argument predicates.

Rules are cheap and explainable, and run before the guard. They never relax the guard:
the firewall takes the strictest of every rule hit and the guard's verdict.

    rules = [
        deny("shell", when=[Arg("command").match(r"\\brm\\s+-rf\\b")]),
        deny("read_file", when=[Arg("path").outside_of("/srv/data")]),
        deny("http_get", when=[Arg("url").hosts_not_in(["example.com", "*.example.org"])]),
        ask("transfer_money", when=[Arg("amount").greater_than(100)]),
    ]
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .content import flatten
from .verdict import Action, Reason

_OPS = ("matches", "outside", "host_not_in", "above", "below")


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` matches anything; every other character is literal (so ``to[*]`` works)."""
    return re.compile("^" + ".*".join(map(re.escape, pattern.split("*"))) + "$")


class ArgPredicate(BaseModel):
    """A predicate on the flattened arguments of a call; holds if ANY matching leaf satisfies it.

    ``arg`` is a path in the flattened arguments (``command``, ``to[0]``, ``options.*``, ``*``).
    Exactly one operator is set. Values that cannot be interpreted (a number that is not one,
    a URL without a host) make the predicate hold: rules fail closed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    arg: str
    matches: str | None = Field(None, description="regular expression searched in the value")
    outside: str | None = Field(None, description="holds when the path resolves outside this root")
    host_not_in: tuple[str, ...] | None = Field(None, description="holds when the URL's host is not allowed")
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> ArgPredicate:
        set_ops = [op for op in _OPS if getattr(self, op) is not None]
        if len(set_ops) != 1:
            raise ValueError(f"argument predicate on {self.arg!r} needs exactly one of {_OPS}, got {set_ops or 'none'}")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as e:
                raise ValueError(f"invalid regular expression {self.matches!r}: {e}") from None
        return self

    def holds(self, leaves: Sequence[tuple[str, str]]) -> str | None:
        """A description of the first leaf that satisfies the predicate, or None."""
        pattern = _glob(self.arg)
        for path, value in leaves:
            if pattern.match(path) and self._test(value):
                return f"{path}={_short(value)}"
        return None

    def _test(self, value: str) -> bool:
        if self.matches is not None:
            return re.search(self.matches, value) is not None
        if self.outside is not None:
            return not _confined(value, self.outside)
        if self.host_not_in is not None:
            return not _host_allowed(value, self.host_not_in)
        try:
            number = float(value)
        except ValueError:
            return True
        if number != number:  # NaN
            return True
        return number > self.above if self.above is not None else number < self.below  # type: ignore[operator]


class Arg:
    """Builds argument predicates in Python: ``Arg("path").outside_of("/srv/data")``."""

    def __init__(self, path: str):
        self.path = path

    def match(self, regex: str) -> ArgPredicate:
        return ArgPredicate(arg=self.path, matches=regex)

    def outside_of(self, root: str | os.PathLike) -> ArgPredicate:
        return ArgPredicate(arg=self.path, outside=os.fspath(root))

    def hosts_not_in(self, hosts: Sequence[str]) -> ArgPredicate:
        return ArgPredicate(arg=self.path, host_not_in=tuple(hosts))

    def greater_than(self, bound: float) -> ArgPredicate:
        return ArgPredicate(arg=self.path, above=bound)

    def less_than(self, bound: float) -> ArgPredicate:
        return ArgPredicate(arg=self.path, below=bound)


def _confined(value: str, root: str) -> bool:
    """True when ``value`` resolves (``..``, ``~`` and symlinks followed) inside ``root``."""
    real_root = os.path.realpath(os.path.expanduser(root))
    target = os.path.expanduser(value.strip())
    if "\x00" in target or not target:
        return False
    real = os.path.realpath(os.path.join(real_root, target))
    try:
        return os.path.commonpath([real, real_root]) == real_root
    except ValueError:  # different drives
        return False


def _host_allowed(value: str, allowed: Sequence[str]) -> bool:
    text = value.strip().replace("\\", "/")  # as browsers and urllib3 read it
    if any(c.isspace() or ord(c) < 32 for c in text):
        return False
    try:
        host = urlsplit(text if "//" in text else "//" + text).hostname
    except ValueError:
        return False
    if not host:
        return False
    host = host.rstrip(".").lower()
    return any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in allowed)


def _short(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


class ToolRule(BaseModel):
    """``action`` applies to calls of tools matching ``tool`` when every ``when`` predicate holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: str = "*"
    action: Action
    when: tuple[ArgPredicate, ...] = ()
    name: str | None = None
    reason: str | None = None

    @property
    def label(self) -> str:
        return self.name or f"{self.action.value} {self.tool}" + (
            " when " + " and ".join(_describe(a) for a in self.when) if self.when else ""
        )

    def check(self, tool: str, leaves: Sequence[tuple[str, str]]) -> Reason | None:
        if not fnmatch.fnmatchcase(tool, self.tool):
            return None
        hits = []
        for predicate in self.when:
            hit = predicate.holds(leaves)
            if hit is None:
                return None
            hits.append(hit)
        detail = f"rule '{self.label}'" + (f" ({', '.join(hits)})" if hits else "")
        if self.reason:
            detail += f": {self.reason}"
        return Reason(kind="rule", action=self.action, detail=detail, rule=self.label)


def _describe(a: ArgPredicate) -> str:
    op = next(op for op in _OPS if getattr(a, op) is not None)
    value = getattr(a, op)
    if op == "matches":
        return f"{a.arg} matches /{value}/"
    shown = ", ".join(value) if isinstance(value, tuple) else f"{value:g}" if isinstance(value, float) else value
    return f"{a.arg} {op.replace('_', ' ')} {shown}"


def allow(tool: str = "*", *, when: Sequence[ArgPredicate] = (), **kw: Any) -> ToolRule:
    return ToolRule(tool=tool, action=Action.ALLOW, when=tuple(when), **kw)


def deny(tool: str = "*", *, when: Sequence[ArgPredicate] = (), **kw: Any) -> ToolRule:
    return ToolRule(tool=tool, action=Action.DENY, when=tuple(when), **kw)


def ask(tool: str = "*", *, when: Sequence[ArgPredicate] = (), **kw: Any) -> ToolRule:
    return ToolRule(tool=tool, action=Action.ASK, when=tuple(when), **kw)


def evaluate(rules: Sequence[ToolRule], tool: str, args: Any, default: Action = Action.ALLOW) -> list[Reason]:
    """Every rule hit for a call; ``default`` applies when no rule mentions the call."""
    leaves = flatten(args if isinstance(args, (dict, list, tuple)) else {"input": args})
    hits = [r for rule in rules if (r := rule.check(tool, leaves)) is not None]
    if not hits and default != Action.ALLOW:
        hits.append(Reason(kind="rule", action=default, detail=f"no rule allows tool '{tool}' (default {default.value})",
                           rule="default"))
    return hits
