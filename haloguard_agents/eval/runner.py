"""Reading labelled JSONL files and running them through a firewall, batch by batch."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cli import UsageError, content_from_row, read_jsonl
from ..config import FirewallConfig
from ..content import Content, Surface
from ..verdict import Action
from . import metrics
from .metrics import Scored

KIND_SURFACES = {
    "prompt": Surface.USER_INPUT,
    # An injection is text planted in what the agent reads, not the user's own request (which the
    # constitution allows to ask for the same actions): it is read where it arrives.
    "injection": Surface.TOOL_RESULT,
    "document": Surface.RETRIEVED_DOCUMENT,
    "tool_call": Surface.TOOL_CALL,
}
NONE = "(none)"
"""The breakdown key of rows without a category or language."""


@dataclass(frozen=True)
class Row:
    line: int
    content: Content
    unsafe: bool
    category: str
    lang: str


def surface_for(row: dict[str, Any], forced: Surface | None) -> Surface:
    """``--surface`` if given, else the row's ``kind``, else user_input."""
    if forced is not None:
        return forced
    return KIND_SURFACES.get(row.get("kind"), Surface.USER_INPUT)  # type: ignore[arg-type]


def read_rows(path: str | Path, *, surface: Surface | None = None, limit: int | None = None) -> list[Row]:
    """The first ``limit`` rows of a JSONL file; a UsageError naming file:line for a bad row."""
    rows: list[Row] = []
    for n, data in read_jsonl(path):
        rows.append(_row(data, surface, f"{path}:{n}", n))
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise UsageError(f"{path}: no rows")
    return rows


def _row(data: dict[str, Any], forced: Surface | None, where: str, n: int) -> Row:
    if data.get("text") is None:
        raise UsageError(f"{where}: row has no 'text' field")
    label = data.get("label")
    if label is None:
        raise UsageError(f"{where}: row has no 'label' field")
    if not isinstance(label, str) or label.strip().lower() not in ("safe", "unsafe"):
        raise UsageError(f"{where}: 'label' must be safe or unsafe, not {json.dumps(label)}")
    surface = surface_for(data, forced)
    fields = {k: v for k, v in data.items() if k != "surface"}  # the surface is decided above
    try:
        content = content_from_row(fields, surface)
    except (UsageError, ValueError) as e:
        raise UsageError(f"{where}: {e}") from None
    return Row(n, content, label.strip().lower() == "unsafe", _key(data.get("category")), _key(data.get("lang")))


def _key(value: Any) -> str:
    return NONE if value is None or value == "" else str(value)


def predicted_unsafe(intended: Action) -> bool:
    """Unsafe at the configured thresholds: the intended action (not shadow's) is not allow/log."""
    return intended > Action.LOG


def progress_enabled(quiet: bool, stream: Any = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    return not quiet and bool(getattr(stream, "isatty", lambda: False)())


def run(firewall: Any, rows: Sequence[Row], *, batch_size: int = 32, desc: str = "",
        progress: bool = False) -> tuple[list[Scored], list[float]]:
    """Every row through ``firewall.check_many``: (scored rows, per-row latency in ms)."""
    from tqdm import tqdm

    scored: list[Scored] = []
    latencies: list[float] = []
    with tqdm(total=len(rows), desc=desc, unit="row", file=sys.stderr, disable=not progress,
              dynamic_ncols=True) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            decisions = firewall.check_many([r.content for r in batch])
            per_row = (decisions[0].latency_ms if decisions else 0.0) / len(batch)
            for row, decision in zip(batch, decisions):
                score = decision.verdict.unsafe if decision.verdict is not None else None
                scored.append(Scored(row.unsafe, predicted_unsafe(decision.intended), score))
                latencies.append(per_row)
            bar.update(len(batch))
    return scored, latencies


def file_result(path: str | Path, rows: Sequence[Row], scored: Sequence[Scored], latencies: Sequence[float],
                *, config: FirewallConfig | None = None) -> dict[str, Any]:
    """The JSON object of one file: overall metrics, breakdowns, sweep and latency.

    ``threshold`` is the configured threshold of the file's (most common) surface.
    """
    surfaces = Counter(r.content.surface.value for r in rows)
    surface = surfaces.most_common(1)[0][0] if surfaces else None
    points = metrics.sweep(scored)
    return {
        "file": Path(path).name,
        "path": str(path),
        "surface": surface,
        "surfaces": dict(surfaces),
        "threshold": config.surface(Surface(surface)).threshold if config and surface else None,
        **metrics.summarize(scored),
        "by_language": metrics.breakdown(scored, [r.lang for r in rows]),
        "by_category": metrics.breakdown(scored, [r.category for r in rows]),
        "sweep": points,
        "best_f1": metrics.best_f1(points),
        "fpr_5pct_threshold": metrics.threshold_for_fpr(points, 0.05),
        "latency": metrics.latency(latencies),
    }
