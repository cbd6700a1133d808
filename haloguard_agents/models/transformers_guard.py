"""Local transformers checkpoints: generative guards and sequence classifiers.

Long text is split into overlapping token windows; every window is scored and the verdict is
the worst window, with its character span. Rows are run in length-sorted sub-batches so a long
document costs memory in proportion to ``batch_size``, not to its length.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..content import Content, Surface
from ..errors import ModelLoadError
from ..policies import Constitution, load_constitution
from ..verdict import Verdict
from .base import LocalGuard
from .formats import haloguard
from . import lexical

SAFE_LABELS = {"safe", "benign", "label_0", "negative", "ok"}
LABEL_ALIASES = {"injection": "prompt_injection", "jailbreak": "jailbreak", "malicious": "prompt_injection"}


@dataclass(frozen=True)
class Window:
    owner: int
    start: int
    end: int
    text: str


def split_windows(tokenizer, texts: Sequence[str], size: int, overlap: int,
                  spans: Sequence[Sequence[tuple[int, int]]] | None = None) -> list[Window]:
    """Token windows of ``size`` tokens overlapping by ``overlap``, as character spans.

    With ``spans`` (per text), no window crosses a span's edge: each span is windowed alone.
    """
    if overlap >= size:
        raise ValueError("window overlap must be smaller than the window size")
    stride = size - overlap
    parts = [(i, start, end) for i, text in enumerate(texts)
             for start, end in (spans[i] if spans is not None else [(0, len(text))])]
    windows: list[Window] = []
    # verbose=False: longer than the model's limit is what windows are for, not worth a warning
    enc = tokenizer([texts[i][start:end] for i, start, end in parts], add_special_tokens=False,
                    return_offsets_mapping=True, verbose=False)
    for (i, base, stop), offsets in zip(parts, enc["offset_mapping"]):
        n = len(offsets)
        if n <= size:
            windows.append(Window(i, base, stop, texts[i][base:stop]))
            continue
        for first in range(0, n - overlap, stride):
            last = min(first + size, n) - 1
            start = base if first == 0 else base + offsets[first][0]
            end = stop if last == n - 1 else base + offsets[last][1]
            windows.append(Window(i, start, end, texts[i][start:end]))
            if last == n - 1:
                break
    return windows


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the sequence of ``hidden`` [batch, length, dim], padding (mask 0) left out."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return getattr(torch, dtype)
    except AttributeError:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None


class TransformersGuard(LocalGuard):
    """Shared machinery: windows, sub-batches, worst-window reduction."""

    reads_records = False
    """Whether the records of a list (``Content.records``) get windows of their own."""

    def __init__(self, model, tokenizer, *, model_id: str, window_tokens: int, window_overlap: int,
                 batch_size: int, constitution: Constitution | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.window_tokens = window_tokens
        self.window_overlap = window_overlap
        self.batch_size = batch_size
        self.constitution = constitution or load_constitution()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        super().__init__()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _score_texts(self, contents: list[Content]) -> list[Verdict]:
        texts = [c.scored_text for c in contents]
        spans = [c.records for c in contents] if self.reads_records else None
        windows = split_windows(self.tokenizer, texts, self.window_tokens, self.window_overlap, spans)
        scores = self._score_windows(windows, [contents[w.owner].surface for w in windows])
        counts = [0] * len(contents)
        best: list[tuple[float, dict[str, float], Window] | None] = [None] * len(contents)
        for window, (unsafe, policies) in zip(windows, scores):
            counts[window.owner] += 1
            current = best[window.owner]
            if current is None or unsafe > current[0]:
                best[window.owner] = (unsafe, policies, window)
        verdicts = []
        for (unsafe, policies, window), n in zip(best, counts):
            span = None if n == 1 else (window.start, window.end)
            verdicts.append(Verdict(unsafe=_clip(unsafe), policies={k: _clip(v) for k, v in policies.items()},
                                    span=span, windows=n))
        return verdicts

    def _score_windows(self, windows: list[Window], surfaces: list[Surface]) -> list[tuple[float, dict[str, float]]]:
        raise NotImplementedError

    def _batches(self, n: int, lengths: Sequence[int]):
        order = sorted(range(n), key=lambda i: lengths[i])
        for i in range(0, n, self.batch_size):
            yield order[i:i + self.batch_size]

    @torch.inference_mode()
    def _last_logits(self, texts: list[str]) -> torch.Tensor:
        """Logits at the last real position of each text, whichever side the tokenizer pads."""
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        mask = enc["attention_mask"].to(self.device)
        logits = self.model(input_ids=enc["input_ids"].to(self.device), attention_mask=mask).logits
        last = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)
        return logits[torch.arange(len(texts), device=self.device), last]


def _clip(x: float) -> float:
    return 0.0 if math.isnan(x) else min(1.0, max(0.0, float(x)))


class GenerativeGuard(TransformersGuard):
    """A causal LM prompted in HaloGuard's format; probabilities from label-token logits."""

    def __init__(self, model, tokenizer, *, policies: Sequence[str] | None = None,
                 policy_floor: float = 0.05, **kw):
        super().__init__(model, tokenizer, **kw)
        self.policies = self.constitution.select(policies)
        self.policy_floor = policy_floor
        self.safe_id = self._first_token(haloguard.SAFE)
        self.unsafe_id = self._first_token(haloguard.UNSAFE)
        if self.safe_id == self.unsafe_id:
            raise ModelLoadError(
                f"{self.model_id}: the labels 'safe' and 'unsafe' start with the same token; "
                "this checkpoint does not use HaloGuard's answer format"
            )
        self._policy_ids = [self.tokenizer.encode(p.id, add_special_tokens=False) for p in self.policies]

    def _first_token(self, word: str) -> int:
        ids = self.tokenizer.encode(word, add_special_tokens=False)
        if not ids:
            raise ModelLoadError(f"{self.model_id}: the tokenizer cannot encode the label {word!r}")
        return ids[0]

    def prompt(self, text: str, surface: Surface) -> str:
        msgs = haloguard.messages(text, surface, self.policies)
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False
            )
        return f"{msgs[0]['content']}\n\nAnswer: "

    def _score_windows(self, windows, surfaces):
        prompts = [self.prompt(w.text, s) for w, s in zip(windows, surfaces)]
        unsafe = [0.0] * len(prompts)
        for idx in self._batches(len(prompts), [len(p) for p in prompts]):
            final = self._last_logits([prompts[i] for i in idx])
            pair = torch.stack([final[:, self.safe_id], final[:, self.unsafe_id]], dim=1).float()
            for i, p in zip(idx, torch.softmax(pair, dim=1)[:, 1].tolist()):
                unsafe[i] = p
        return [(u, self._policy_scores(p, u) if u >= self.policy_floor else {})
                for p, u in zip(prompts, unsafe)]

    @torch.inference_mode()
    def _policy_scores(self, prompt: str, unsafe: float) -> dict[str, float]:
        """Teacher-force ``unsafe\\n`` and score each policy id as the first one listed.

        The prompt is run once; its key/value cache is copied for each chunk of policy ids,
        so the cost is one prompt plus a few tokens per policy. The top policy carries the
        overall probability; the others are scaled by their likelihood relative to it, so
        per-policy thresholds compare like with like.
        """
        prefix = self.tokenizer.encode(prompt + haloguard.POLICY_PREFIX, add_special_tokens=False)
        out = self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True)
        cache = getattr(out, "cache", None)
        if cache is None:  # transformers before 5.x
            cache = out.past_key_values
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        logprobs: list[float] = []
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(self._policy_ids), self.batch_size):
            chunk = self._policy_ids[start:start + self.batch_size]
            width = max(map(len, chunk))
            ids = torch.tensor([c + [pad] * (width - len(c)) for c in chunk], device=self.device)
            mask = torch.tensor([[1] * (len(prefix) + len(c)) + [0] * (width - len(c)) for c in chunk],
                                device=self.device)
            rows = copy.deepcopy(cache)
            rows.batch_repeat_interleave(len(chunk))
            logp = torch.log_softmax(
                self.model(input_ids=ids, attention_mask=mask, **{self._cache_arg: rows}).logits.float(), dim=-1)
            for row, c in enumerate(chunk):
                total = first[c[0]].item()
                total += sum(logp[row, j - 1, c[j]].item() for j in range(1, len(c)))
                logprobs.append(total)
        top = max(logprobs)
        return {p.id: unsafe * math.exp(lp - top) for p, lp in zip(self.policies, logprobs)}

    @functools.cached_property
    def _cache_arg(self) -> str:
        """``cache`` in recent transformers, ``past_key_values`` before."""
        return "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"


class ClassifierGuard(TransformersGuard):
    """A sequence classifier: multi-label (sigmoid) over policies, or single-label (softmax).

    If the config sets ``haloguard_surface_prefix`` (a format string with ``{surface}``), the
    surface is prepended to the text so the model can condition on where it came from. If it
    sets ``haloguard_pooling: mean``, the head reads the mean of the last hidden states instead
    of the first token: the pooling encoders like e5 were trained with. A ``lexical`` head
    (``lexical.safetensors`` in the checkpoint) adds its n-gram logit to the ``unsafe`` logit.
    It reads each record of a listed tool result or document in windows of its own: pooled
    together, unrelated harmless records look unsafe far more often than any one of them.
    """

    reads_records = True

    def __init__(self, model, tokenizer, *, lexical_head: lexical.LexicalHead | None = None, **kw):
        super().__init__(model, tokenizer, **kw)
        config = model.config
        self.labels = [str(config.id2label[i]).lower() for i in range(config.num_labels)]
        self.multi_label = config.problem_type == "multi_label_classification"
        self.surface_prefix = getattr(config, "haloguard_surface_prefix", None)
        self.thresholds = {Surface(k): float(v) for k, v in (getattr(config, "haloguard_thresholds", None) or {}).items()}
        self.mean_pooling = getattr(config, "haloguard_pooling", "cls") == "mean"
        if self.mean_pooling and not isinstance(getattr(model, "classifier", None), torch.nn.Linear):
            raise ModelLoadError(f"{self.model_id}: haloguard_pooling 'mean' needs a model whose head is one "
                                 "Linear layer named 'classifier' (e.g. BertForSequenceClassification)")
        if not self.multi_label and not any(lbl in SAFE_LABELS for lbl in self.labels):
            raise ModelLoadError(
                f"{self.model_id}: a single-label classifier needs a safe label (one of "
                f"{sorted(SAFE_LABELS)}) in config.id2label, found {self.labels}"
            )
        if lexical_head is not None and not (self.multi_label and "unsafe" in self.labels):
            raise ModelLoadError(f"{self.model_id}: {lexical.FILE} adds to the 'unsafe' logit of a multi-label "
                                 f"classifier, but this one's labels are {self.labels}")
        self.lexical = lexical_head
        self.policy_labels = {
            i: LABEL_ALIASES.get(lbl, lbl) for i, lbl in enumerate(self.labels)
            if lbl not in SAFE_LABELS and lbl != "unsafe"
        }

    def _text(self, window: Window, surface: Surface) -> str:
        return self.surface_prefix.format(surface=surface.value) + window.text if self.surface_prefix else window.text

    def _score_windows(self, windows, surfaces):
        texts = [self._text(w, s) for w, s in zip(windows, surfaces)]
        out: list[tuple[float, dict[str, float]]] = [(0.0, {})] * len(texts)
        for idx in self._batches(len(texts), [len(t) for t in texts]):
            enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.window_tokens + 16)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            with torch.inference_mode():
                logits = (self._mean_pooled(enc) if self.mean_pooling else self.model(**enc).logits).float()
                if self.lexical is not None:
                    ngrams = self.lexical.logits([texts[i] for i in idx])
                    logits[:, self.labels.index("unsafe")] += ngrams.to(self.device)
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            for i, row in zip(idx, probs.tolist()):
                out[i] = self._read(row)
        return out

    def _mean_pooled(self, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        base = self.model.base_model
        mean = masked_mean(base(**enc).last_hidden_state, enc["attention_mask"])
        pooled = base.pooler(mean.unsqueeze(1)) if getattr(base, "pooler", None) is not None else mean
        return self.model.classifier(pooled)

    def _read(self, row: list[float]) -> tuple[float, dict[str, float]]:
        policies = {name: row[i] for i, name in self.policy_labels.items()}
        if "unsafe" in self.labels:
            overall = row[self.labels.index("unsafe")]
            # A policy violation is unsafe content: no policy is more likely than the overall label.
            policies = {name: min(p, overall) for name, p in policies.items()}
        elif self.multi_label:
            overall = max(policies.values(), default=0.0)
        else:
            overall = 1.0 - sum(row[i] for i, lbl in enumerate(self.labels) if lbl in SAFE_LABELS)
        return overall, policies
