"""A hashed bag of word and character n-grams whose logit adds to a classifier's ``unsafe`` logit.

The fine-tuned encoder and a linear model over n-grams make different mistakes: the encoder
generalises over paraphrase and language, the n-grams keep exact cues it smooths over (an
attacker's address, "then delete the sent email"). Their sum ranks the dev sets better than
either alone, for a few percent more CPU time. Features are hashed with CRC-32, which is the same
on every platform and Python version, so the weights need no vocabulary file.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import ModelLoadError

FILE = "lexical.safetensors"
BUCKETS = 1 << 18
MAX_CHARS = 4000
CHAR_NGRAMS = (3, 4, 5)
_WORD = re.compile(r"\w+")


def bucket(key: str, buckets: int = BUCKETS) -> int:
    return zlib.crc32(key.encode("utf-8", "replace")) % buckets


def features(text: str, buckets: int = BUCKETS) -> tuple[list[int], list[float]]:
    """Hashed word unigrams and bigrams and character 3- to 5-grams, log-scaled, L2-normalised."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower())
    counts: dict[int, int] = {}

    def add(key: str) -> None:
        k = bucket(key, buckets)
        counts[k] = counts.get(k, 0) + 1

    for i, w in enumerate(words):
        add("w:" + w)
        if i:
            add(f"w:{words[i - 1]} {w}")
    joined = f" {' '.join(words)} "
    for n in CHAR_NGRAMS:
        for i in range(len(joined) - n + 1):
            add("c:" + joined[i:i + n])
    values = [1.0 + math.log(c) for c in counts.values()]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return list(counts), [v / norm for v in values]


def bags(texts: Sequence[str], buckets: int = BUCKETS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices, weights and offsets for ``nn.EmbeddingBag``."""
    idx: list[int] = []
    val: list[float] = []
    off: list[int] = []
    for text in texts:
        i, v = features(text, buckets)
        off.append(len(idx))
        idx += i
        val += v
    return torch.tensor(idx, dtype=torch.long), torch.tensor(val), torch.tensor(off, dtype=torch.long)


class LexicalHead(torch.nn.Module):
    """``logit(text) = w · features(text) + b``."""

    def __init__(self, buckets: int = BUCKETS):
        super().__init__()
        self.bag = torch.nn.EmbeddingBag(buckets, 1, mode="sum")
        torch.nn.init.zeros_(self.bag.weight)
        self.bias = torch.nn.Parameter(torch.zeros(1))

    @property
    def buckets(self) -> int:
        return self.bag.num_embeddings

    def forward(self, idx: torch.Tensor, val: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
        return self.bag(idx, off, per_sample_weights=val).squeeze(1) + self.bias

    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        with torch.inference_mode():
            return self(*bags(texts, self.buckets)).float()

    def save(self, path: Path, scale: float = 1.0) -> None:
        from safetensors.torch import save_file

        save_file({"weight": (self.bag.weight.detach()[:, 0] * scale).half().contiguous(),
                   "bias": (self.bias.detach() * scale).float()}, path)

    @classmethod
    def load(cls, path: Path, scale: float = 1.0) -> LexicalHead:
        from safetensors.torch import load_file

        try:
            tensors = load_file(path)
            weight, bias = tensors["weight"].float(), tensors["bias"].float()
        except Exception as e:  # safetensors raises its own error type for a damaged file
            raise ModelLoadError(f"{path} is not an n-gram head ({e}); re-save it with LexicalHead.save "
                                 "or remove it to use the classifier alone") from None
        head = cls(weight.numel())
        with torch.no_grad():
            head.bag.weight.copy_(weight[:, None] * scale)
            head.bias.copy_(bias * scale)
        return head.eval()
