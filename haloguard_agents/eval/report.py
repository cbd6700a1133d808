"""Rendering results: the summary printed to stdout, the Markdown report and its plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cli import UsageError

MAX_CATEGORIES = 25
"""The report shows at most this many categories per file (the largest)."""
RATES = ("precision", "recall", "f1", "fpr", "fnr")


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


# -- stdout ---------------------------------------------------------------------------------

def summary(result: dict[str, Any], guard: str, max_categories: int = 10) -> str:
    """One table per file: overall, by language, the largest categories; sweep and latency."""
    r = result
    lines = [f"{r['file']}: {r['n']} rows ({r['tp'] + r['fn']} unsafe, {r['fp'] + r['tn']} safe), "
             f"surface {r['surface']}, guard {guard}"]
    cats = list(r["by_category"].items())
    names = ["overall", *(f"lang {k}" for k in r["by_language"]), *(f"cat {k}" for k, _ in cats[:max_categories])]
    w = min(max(map(len, names)), 40)
    lines.append(f"  {'':<{w}} {'n':>6} {'prec':>6} {'recall':>6} {'f1':>6} {'fpr':>6} {'fnr':>6}")

    def line(name: str, m: dict[str, Any]) -> str:
        cells = [fmt(m.get(k)) if k in m else "" for k in RATES]
        return f"  {name[:w]:<{w}} {m['n']:>6} " + " ".join(f"{c:>6}" for c in cells)

    lines.append(line("overall", r))
    for lang, m in r["by_language"].items():
        lines.append(line(f"lang {lang}", m))
    for cat, m in cats[:max_categories]:
        lines.append(line(f"cat {cat}", m))
    if len(cats) > max_categories:
        lines.append(f"  ... {len(cats) - max_categories} more categories (see --json / --report)")
    best, low, lat = r["best_f1"], r["fpr_5pct_threshold"], r["latency"]
    lines.append("  sweep: best F1 " + (f"{best['f1']:.3f} at threshold {best['threshold']:.2f}" if best else "n/a")
                 + "; FPR <= 5% from threshold " + (f"{low:.2f}" if low is not None else "n/a"))
    lines.append(f"  latency: mean {_ms(lat['mean_ms'])} ms/row, p50 {_ms(lat['p50_ms'])}, "
                 f"p95 {_ms(lat['p95_ms'])}, {_ms(lat['rows_per_s'])} rows/s")
    return "\n".join(lines)


# -- Markdown ---------------------------------------------------------------------------------

def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def markdown(results: Sequence[dict[str, Any]], guard: str, plots: Sequence[str | None] = ()) -> str:
    """The report; ``plots`` holds each file's PNG name (relative to the report), or None."""
    lines = ["# Guard evaluation", "",
             f"Guard: `{guard}`. Predictions at the configured thresholds are the firewall's intended "
             "action (unsafe when it is not allow or log); the sweep compares P(unsafe) with each "
             "threshold (rows without a score count as unsafe). Rates are fractions; n/a where undefined.",
             ""]
    lines += _table(["file", "surface", "n", "precision", "recall", "F1", "FPR", "FNR"],
                    [[r["file"], r["surface"], r["n"], *(fmt(r[k]) for k in RATES)] for r in results])
    for i, r in enumerate(results):
        lines += ["", f"## {r['file']}", "",
                  f"`{r['path']}`: {r['n']} rows, {r['tp'] + r['fn']} unsafe and {r['fp'] + r['tn']} safe; "
                  f"surface {r['surface']}"
                  + (f" (threshold {r['threshold']:.2f})" if r.get("threshold") is not None else "") + ".", ""]
        lines += _table(["n", "precision", "recall", "F1", "FPR", "FNR", "TP", "FP", "TN", "FN"],
                        [[r["n"], *(fmt(r[k]) for k in RATES), r["tp"], r["fp"], r["tn"], r["fn"]]])
        lines += ["", "### By language", ""]
        lines += _breakdown("language", r["by_language"])
        cats = r["by_category"]
        title = "### By category"
        if len(cats) > MAX_CATEGORIES:
            title += f" ({MAX_CATEGORIES} largest of {len(cats)})"
        lines += ["", title, ""]
        lines += _breakdown("category", dict(list(cats.items())[:MAX_CATEGORIES]))
        lines += ["", "### Threshold sweep", ""]
        lines += _table(["threshold", "precision", "recall", "F1", "FPR", "FNR"],
                        [[f"{p['threshold']:.2f}", *(fmt(p[k]) for k in RATES)] for p in r["sweep"]])
        best, low = r["best_f1"], r["fpr_5pct_threshold"]
        lines += ["",
                  "Best F1: " + (f"{best['f1']:.3f} at threshold {best['threshold']:.2f}." if best
                                 else "n/a (no unsafe rows)."),
                  "Lowest threshold with FPR <= 5%: "
                  + (f"{low:.2f}." if low is not None
                     else "n/a (no safe rows)." if r["fp"] + r["tn"] == 0 else "none in the sweep."), ""]
        if i < len(plots) and plots[i]:
            lines += [f"![FPR and FNR against the threshold, {r['file']}]({plots[i]})", ""]
        lat = r["latency"]
        lines += ["### Latency", ""]
        lines += _table(["mean ms/row", "p50 ms", "p95 ms", "rows/s"],
                        [[_ms(lat["mean_ms"]), _ms(lat["p50_ms"]), _ms(lat["p95_ms"]), _ms(lat["rows_per_s"])]])
        lines += ["", "Per-row latency is the latency of its batch divided by the batch size."]
    return "\n".join(lines) + "\n"


def _breakdown(name: str, groups: dict[str, dict[str, Any]]) -> list[str]:
    return _table([name, "n", "F1", "FPR", "FNR"],
                  [[k, m["n"], fmt(m["f1"]), fmt(m["fpr"]), fmt(m["fnr"])] for k, m in groups.items()])


# -- plots ------------------------------------------------------------------------------------

def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--report needs matplotlib for its plots: pip install 'haloguard-agents[eval]'") from None


def plot(result: dict[str, Any], out: Path, guard: str) -> Path:
    """FPR and FNR against the threshold, as a PNG (Agg backend, no pyplot state)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = result["sweep"]
    xs = [p["threshold"] for p in points]
    fig = Figure(figsize=(6.4, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key, label, style in (("fpr", "FPR (safe rows flagged)", "o-"), ("fnr", "FNR (unsafe rows missed)", "s-")):
        ys = [p[key] for p in points]
        if any(y is not None for y in ys):
            ax.plot(xs, [float("nan") if y is None else y for y in ys], style, markersize=3, label=label)
    if result.get("threshold") is not None:
        ax.axvline(result["threshold"], color="grey", linestyle="--", linewidth=1,
                   label=f"configured threshold {result['threshold']:.2f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("threshold on P(unsafe)")
    ax.set_ylabel("rate")
    ax.set_title(f"{result['file']} ({result['n']} rows), {guard}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    return out


def plot_names(report: Path, paths: Sequence[str]) -> list[str]:
    """``<report stem>-<file stem>.png`` per file, made unique when two files share a stem."""
    names: list[str] = []
    used: set[str] = set()
    for path in paths:
        base = f"{report.stem}-{Path(path).stem}"
        name, i = f"{base}.png", 2
        while name in used:
            name, i = f"{base}-{i}.png", i + 1
        used.add(name)
        names.append(name)
    return names


def write_report(report: Path, results: Sequence[dict[str, Any]], guard: str) -> list[Path]:
    """The Markdown report and one PNG per file next to it; returns the files written."""
    names = plot_names(report, [r["path"] for r in results])
    written = []
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
        for r, name in zip(results, names):
            written.append(plot(r, report.parent / name, guard))
        report.write_text(markdown(results, guard, names), encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write the report {report}: {e.strerror or e}") from None
    return [report, *written]
