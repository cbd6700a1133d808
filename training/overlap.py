"""Which evaluation texts the built-in guard's training data already contains.

    python training/overlap.py ../shared/data/dev/*.jsonl --shared-train ../shared/data/train

(with the training run's ``--extra-data`` and ``--exclude`` options, if it had any). A dev-set
row that is also a training row, or is quoted inside one (a jailbreak wrapped around a
benchmark's request), is partly measured by memory, not generalisation; the dev table in the
README says where. Texts are compared lower-cased with punctuation and spacing folded, so a
different quote style or trailing period still counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training import dataset  # noqa: E402

GRAM = 4  # words per shingle: dev texts of fewer words are only matched whole


@dataclass
class Overlap:
    """Per evaluation file: how many rows equal a training row, how many are quoted inside one,
    and in which training sources they were found."""

    n: int = 0
    equal: int = 0
    quoted: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


def overlaps(training: Iterable[tuple[str, str]], evaluation: Iterable[str]) -> Overlap:
    """``training`` is ``(text, source)`` pairs. A row is counted once, as equal or as quoted.

    Containment is found through an index of word 4-grams (a quoted text's first and last
    4-gram both occur in the row that quotes it), then checked on the folded strings.
    """
    texts, sources = [], []
    whole: dict[str, set[str]] = defaultdict(set)
    grams: dict[str, set[int]] = defaultdict(set)
    for text, source in training:
        folded = dataset.fold(text)
        whole[folded].add(source)
        words = folded.split()
        for i in range(len(words) - GRAM + 1):
            grams[" ".join(words[i:i + GRAM])].add(len(texts))
        texts.append(f" {folded} ")
        sources.append(source)

    def quoting(folded: str) -> set[str]:
        words = folded.split()
        if len(words) < GRAM:
            return set()
        rows = grams.get(" ".join(words[:GRAM]), set()) & grams.get(" ".join(words[-GRAM:]), set())
        return {sources[i] for i in rows if f" {folded} " in texts[i]}

    result = Overlap()
    for text in evaluation:
        result.n += 1
        folded = dataset.fold(text)
        if folded in whole:
            found = whole[folded]
            result.equal += 1
        else:
            found = quoting(folded)
            result.quoted += bool(found)
        result.sources.update(found)
        if found and len(result.examples) < 3:
            result.examples.append(text[:100])
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="evaluation JSONL files (rows with a text field)")
    dataset.add_arguments(ap)
    ap.add_argument("--json", type=Path, help="also write the counts here")
    args = ap.parse_args(argv)
    rows = dataset.from_arguments(args)
    training = [(r.text, r.source) for r in rows]
    report = {}
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            found = overlaps(training, (json.loads(line)["text"] for line in f if line.strip()))
        report[path.name] = {"n": found.n, "equal": found.equal, "quoted": found.quoted,
                             "sources": dict(found.sources), "examples": found.examples}
        print(f"{path.name}: {found.n} rows, {found.equal} equal to a training row, {found.quoted} quoted inside one"
              + (f" (found in {dict(found.sources.most_common())})" if found.sources else ""))
        for example in found.examples:
            print(f"    e.g. {example!r}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
