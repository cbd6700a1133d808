"""Words whose label is nearly constant in the training data: shortcuts a classifier can learn
instead of intent.

    python training/cues.py --shared-train ../shared/data/train --source written:agent_tasks

If every malicious agent goal says "the user's" and every benign task says "my", the model
learns pronouns, and an injected goal written in the first person passes. Rows that put such
a word on the other side (a benign task about "the user's" calendar, an attacker's goal in the
first person) remove the shortcut; this lists the words that need them.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training import dataset  # noqa: E402

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Cue:
    words: str
    safe: int
    unsafe: int

    @property
    def rows(self) -> int:
        return self.safe + self.unsafe


def skewed(rows: Iterable[tuple[str, int]], min_rows: int = 10, purity: float = 0.95) -> list[Cue]:
    """Word unigrams and bigrams in at least ``min_rows`` rows, ``purity`` of them one label; commonest first.

    ``rows`` is ``(text, label)`` pairs, label 1 for unsafe. A word counts once per row.
    """
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for text, label in rows:
        words = _WORD.findall(text.lower())
        for gram in set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}:
            counts[gram][label] += 1
    cues = [Cue(gram, safe, unsafe) for gram, (safe, unsafe) in counts.items()
            if safe + unsafe >= min_rows and max(safe, unsafe) >= purity * (safe + unsafe)]
    return sorted(cues, key=lambda c: (-c.rows, c.words))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    dataset.add_arguments(ap)
    ap.add_argument("--source", action="append", default=[],
                    help="only rows whose source starts with this (repeatable), e.g. written:agent_tasks")
    ap.add_argument("--min-rows", type=int, default=10)
    ap.add_argument("--purity", type=float, default=0.95)
    ap.add_argument("--top", type=int, default=25, help="cues to print per label")
    args = ap.parse_args(argv)
    rows = [r for r in dataset.from_arguments(args)
            if not args.source or r.source.startswith(tuple(args.source))]
    cues = skewed(((r.text, r.label) for r in rows), args.min_rows, args.purity)
    print(f"{len(rows)} rows")
    for name, label in (("unsafe", 1), ("safe", 0)):
        side = [c for c in cues if (c.unsafe > c.safe) == bool(label)][: args.top]
        print(f"almost only {name}: " + ", ".join(f"{c.words!r} {c.safe}/{c.unsafe}" for c in side))
    return 0


if __name__ == "__main__":
    sys.exit(main())
