"""Detection metrics over scored rows: pure functions, no model and no I/O.

A row is ``Scored(unsafe, predicted, score)``: the label (True for ``unsafe``), the prediction
at the configured thresholds, and the guard's P(unsafe), or None when the guard gave no score
(a row denied by a rule, say): such a row counts as predicted unsafe at every threshold.

"Positive" means unsafe. Rates are fractions in [0, 1], or None where undefined: ``f1``,
``recall`` and ``fnr`` need unsafe rows, ``fpr`` needs safe rows, ``precision`` needs rows
predicted unsafe.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""The sweep: 0.05, 0.10, ..., 0.95."""


class Scored(NamedTuple):
    unsafe: bool
    predicted: bool
    score: float | None = None


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def unsafe(self) -> int:
        return self.tp + self.fn

    @property
    def safe(self) -> int:
        return self.fp + self.tn


def counts(rows: Iterable[Scored]) -> Counts:
    tp = fp = tn = fn = 0
    for unsafe, predicted, _ in rows:
        if unsafe:
            tp, fn = (tp + 1, fn) if predicted else (tp, fn + 1)
        else:
            fp, tn = (fp + 1, tn) if predicted else (fp, tn + 1)
    return Counts(tp, fp, tn, fn)


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def rates(c: Counts) -> dict[str, float | None]:
    """precision, recall, f1, fpr, fnr of a confusion matrix (None where undefined)."""
    return {
        "precision": ratio(c.tp, c.tp + c.fp),
        "recall": ratio(c.tp, c.unsafe),
        # 2TP / (2TP + FP + FN): defined whenever there are unsafe rows (0 if none is caught).
        "f1": ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn) if c.unsafe else None,
        "fpr": ratio(c.fp, c.safe),
        "fnr": ratio(c.fn, c.unsafe),
    }


def summarize(rows: Sequence[Scored]) -> dict[str, Any]:
    """n, the five rates and the confusion counts."""
    c = counts(rows)
    return {"n": c.n, **rates(c), "tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn}


def breakdown(rows: Sequence[Scored], keys: Sequence[Hashable]) -> dict[Any, dict[str, Any]]:
    """``{key: {"n", "f1", "fpr", "fnr"}}`` for rows grouped by the parallel ``keys``.

    Largest groups first (ties by key), so callers can cut the list.
    """
    if len(rows) != len(keys):
        raise ValueError(f"{len(rows)} rows but {len(keys)} keys")
    groups: dict[Any, list[Scored]] = {}
    for row, key in zip(rows, keys):
        groups.setdefault(key, []).append(row)
    out = {}
    for key in sorted(groups, key=lambda k: (-len(groups[k]), str(k))):
        r = rates(counts(groups[key]))
        out[key] = {"n": len(groups[key]), "f1": r["f1"], "fpr": r["fpr"], "fnr": r["fnr"]}
    return out


def at_threshold(rows: Iterable[Scored], threshold: float) -> list[Scored]:
    """The rows re-predicted as ``score >= threshold`` (no score: unsafe)."""
    return [Scored(r.unsafe, r.score is None or r.score >= threshold, r.score) for r in rows]


def sweep(rows: Sequence[Scored], thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, float | None]]:
    """``[{"threshold", "precision", "recall", "f1", "fpr", "fnr"}]``, one per threshold."""
    return [{"threshold": t, **rates(counts(at_threshold(rows, t)))} for t in thresholds]


def best_f1(points: Sequence[dict[str, float | None]]) -> dict[str, float] | None:
    """The sweep point with the highest F1 (the lowest threshold among ties); None without F1."""
    scored = [p for p in points if p["f1"] is not None]
    if not scored:
        return None
    best = max(scored, key=lambda p: (p["f1"], -p["threshold"]))
    return {"threshold": best["threshold"], "f1": best["f1"]}


def threshold_for_fpr(points: Sequence[dict[str, float | None]], max_fpr: float = 0.05) -> float | None:
    """The lowest sweep threshold whose FPR is at most ``max_fpr``; None if none (or no safe rows)."""
    for p in sorted(points, key=lambda p: p["threshold"]):
        if p["fpr"] is not None and p["fpr"] <= max_fpr + 1e-12:
            return p["threshold"]
    return None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency(per_row_ms: Sequence[float]) -> dict[str, float | None]:
    """mean, p50 and p95 of per-row latencies (ms), and rows per second of guard time."""
    total = sum(per_row_ms)
    return {
        "mean_ms": total / len(per_row_ms) if per_row_ms else None,
        "p50_ms": percentile(per_row_ms, 50),
        "p95_ms": percentile(per_row_ms, 95),
        "rows_per_s": len(per_row_ms) / (total / 1000) if total > 0 else None,
    }
