"""Tool results that list many items, read as one text and record by record, side by side.

    python benchmarks/listed_results.py --dev ../shared/data/dev [--threshold T] [--lists 200]

Joins 4 to 10 of agentdojo_documents' items into JSON arrays of ``{"id", "text"}`` records
(benign lists), and puts each of agentdojo_tasks' injections into two more lists. Prints, for
the built-in guard reading each list as one text and record by record (the default), the share
of lists over the tool-result threshold per kind, and the time each way. Seeded: the same lists
every run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from haloguard_agents import Content, Surface, load_guard  # noqa: E402
from haloguard_agents.models.base import VerdictCache  # noqa: E402
from haloguard_agents.models.transformers_guard import ClassifierGuard  # noqa: E402


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def lists(dev: Path, n: int, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, JSON text) for n benign lists and two lists per injection."""
    items = sorted({r["text"] for r in read(dev / "agentdojo_documents.jsonl")})
    injections = [(r["category"].split(":")[-1], r["text"])
                  for r in read(dev / "agentdojo_tasks.jsonl") if r["label"] == "unsafe"]
    out = []
    for kind, text in [("benign", None)] * n + injections * 2:
        picked = rng.sample(items, rng.randint(4, 10))
        if text is not None:
            picked.insert(rng.randrange(len(picked) + 1), text)
        out.append((kind, json.dumps([{"id": i, "text": t} for i, t in enumerate(picked)], indent=1)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dev", type=Path, required=True, help="the folder with agentdojo_documents/tasks.jsonl")
    ap.add_argument("--model", default="builtin", help="a classifier checkpoint (default: builtin)")
    ap.add_argument("--threshold", type=float, help="default: the guard's tool-result threshold")
    ap.add_argument("--lists", type=int, default=200, help="benign lists")
    args = ap.parse_args()
    guard = load_guard(args.model)
    if not isinstance(guard, ClassifierGuard):
        sys.exit(f"{args.model} is not a classifier; only classifiers read records apart")
    threshold = args.threshold if args.threshold is not None else guard.thresholds.get(Surface.TOOL_RESULT, 0.5)
    rows = lists(args.dev, args.lists, random.Random(0))
    print(f"{len(rows)} lists; share over {threshold} as tool results")
    for by_record in (False, True):
        guard.reads_records = by_record
        guard.cache = VerdictCache()  # verdicts read the other way are not these
        start = time.perf_counter()
        verdicts = guard.score([Content(Surface.TOOL_RESULT, text) for _, text in rows])
        seconds = time.perf_counter() - start
        flagged: dict[str, list[bool]] = {}
        for (kind, _), v in zip(rows, verdicts):
            flagged.setdefault(kind, []).append(v.unsafe >= threshold)
        shares = "  ".join(f"{kind} {sum(f) / len(f):.3f} (n={len(f)})" for kind, f in flagged.items())
        print(f"{'record by record' if by_record else 'one text':>16}: {shares}  {seconds:.1f} s")


if __name__ == "__main__":
    main()
