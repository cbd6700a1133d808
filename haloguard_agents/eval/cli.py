"""``haloguard-agents eval FILE.jsonl ... [--guard G] [--surface S] [--json OUT] [--report OUT.md]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..cli import OK, UsageError, firewall_from_args
from ..content import Surface


def add_eval_command(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "eval", help="measure a guard on labelled JSONL files (fields text, label, category, lang, kind)",
        description="Precision, recall, F1, FPR and FNR per file at the configured thresholds, by category and "
                    "by language, a threshold sweep and latency. Exit 0 on success, 2 for bad input, 3 if the "
                    "model cannot be loaded.")
    p.add_argument("files", nargs="+", metavar="FILE.jsonl")
    p.add_argument("--guard", dest="model", default=None, metavar="GUARD",
                   help="builtin, tiny, a checkpoint directory or a cached hub id (default: the config's guard)")
    p.add_argument("--surface", choices=[s.value for s in Surface], default=None,
                   help="surface of every row (default: from each row's kind, else user_input)")
    p.add_argument("--config", type=Path, default=None, help="FirewallConfig YAML file (thresholds, rules, ...)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, ...")
    p.add_argument("--limit", type=_positive, default=None, metavar="N", help="only the first N rows of each file")
    p.add_argument("--batch-size", type=_positive, default=32, metavar="N", help="rows per firewall call (32)")
    p.add_argument("--json", dest="json_out", type=Path, default=None, metavar="OUT", help="write the results as JSON")
    p.add_argument("--report", type=Path, default=None, metavar="OUT.md",
                   help="write a Markdown report, with one PNG plot per file next to it")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_eval)
    return p


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def run_eval(args: argparse.Namespace) -> int:
    from . import report, runner

    surface = Surface(args.surface) if args.surface else None
    # Every file is read and checked before the model loads: bad input fails fast.
    files = [(f, runner.read_rows(f, surface=surface, limit=args.limit)) for f in args.files]
    if args.report:
        report.require_matplotlib()
    firewall = firewall_from_args(args)
    guard = firewall.model_id or str(args.model)
    progress = runner.progress_enabled(args.quiet)
    results = []
    for i, (path, rows) in enumerate(files):
        scored, latencies = runner.run(firewall, rows, batch_size=args.batch_size, desc=Path(path).name,
                                       progress=progress)
        result = runner.file_result(path, rows, scored, latencies, config=getattr(firewall, "config", None))
        results.append(result)
        print(("\n" if i else "") + report.summary(result, guard), flush=True)
    if args.json_out:
        _write(args.json_out, json.dumps({"guard": guard, "files": results}, ensure_ascii=False, indent=1) + "\n")
    if args.report:
        report.write_report(args.report, results, guard)
    return OK


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
