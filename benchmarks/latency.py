"""Guard latency on this machine, measured side by side in one run.

    python benchmarks/latency.py [--model builtin] [--baseline DIR] [--threads 2] [--repeat 30]

Prints p50/p95 for one short text, a batch of 32 short texts, and 32 concurrent async callers,
with the ratios that matter: batching versus one-by-one, and concurrent async callers (merged
into batches by the worker thread) versus sequential calls, and with ``--baseline`` another
guard (an older checkpoint, say) timed in turn with the first. Cache hits are excluded: every
measured text is new to the guard.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from haloguard_agents import Content, Surface, load_guard  # noqa: E402

TEXTS = [
    "How do I bake sourdough bread at home?", "Summarise this email in two sentences.",
    "¿Cuál es la capital de Australia?", "Wie funktioniert eine Wärmepumpe?",
    "Écris un poème sur la mer.", "東京でおすすめのラーメン屋はどこですか？", "Как выучить испанский быстрее?",
    "Write a SQL query that counts orders per day.",
]


class Fresh:
    """Short texts never scored before, so the verdict cache does not flatter the numbers."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, k: int = 1) -> list[Content]:
        out = []
        for _ in range(k):
            self.n += 1
            out.append(Content(Surface.USER_INPUT, f"{TEXTS[self.n % len(TEXTS)]} (#{self.n})"))
        return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--baseline", help="another guard, timed in turn with --model, for their ratio")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    guard = load_guard(args.model, device="cpu")
    fresh = Fresh()
    for _ in range(3):
        guard.score(fresh(32))  # warm up allocator and kernels

    single = [timed(lambda: guard.score(fresh())) for _ in range(args.repeat)]
    batch = [timed(lambda: guard.score(fresh(32))) for _ in range(max(5, args.repeat // 3))]
    one_by_one = [timed(lambda: [guard.score(fresh()) for _ in range(32)]) for _ in range(3)]

    async def concurrent() -> float:
        contents = fresh(32)
        start = time.perf_counter()
        await asyncio.gather(*(guard.ascore([c]) for c in contents))
        return (time.perf_counter() - start) * 1000

    gathered = [asyncio.run(concurrent()) for _ in range(5)]

    print(f"model {guard.model_id}, torch threads {torch.get_num_threads()}")
    print(f"one short text      p50 {statistics.median(single):7.1f} ms   p95 {pct(single, 0.95):7.1f} ms   (target p50 <= 40 ms)")
    print(f"batch of 32         p50 {statistics.median(batch):7.1f} ms   p95 {pct(batch, 0.95):7.1f} ms   (target <= 600 ms)")
    print(f"32 one by one       p50 {statistics.median(one_by_one):7.1f} ms")
    print(f"32 concurrent async p50 {statistics.median(gathered):7.1f} ms")
    print(f"ratio one-by-one / batch          {statistics.median(one_by_one) / statistics.median(batch):5.2f}x")
    print(f"ratio one-by-one / async gather   {statistics.median(one_by_one) / statistics.median(gathered):5.2f}x")
    if args.baseline:
        baseline = load_guard(args.baseline, device="cpu")
        baseline.score(fresh(32))
        for k, n in ((1, args.repeat), (32, max(5, args.repeat // 3))):
            ours, theirs = zip(*[(timed(lambda: guard.score(fresh(k))), timed(lambda: baseline.score(fresh(k))))
                                 for _ in range(n)])
            print(f"ratio baseline / model, {k:2d} text(s) {statistics.median(theirs) / statistics.median(ours):5.2f}x"
                  f"   (baseline {baseline.model_id} p50 {statistics.median(theirs):.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
