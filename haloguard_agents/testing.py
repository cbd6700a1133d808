"""Tiny real checkpoints with controlled logits, for tests, recipes and offline smoke checks.

The models are genuine 2-layer Qwen3 transformers saved with ``save_pretrained`` and loaded
through ``load_guard``; only their weights are chosen by hand instead of trained, so that
their answers are known in advance. Every "trigger" word is wired to one policy and one
probability:

* one attention head attends from every position to trigger tokens (and nowhere else), so the
  answer position sees which triggers occurred anywhere before it;
* the LM head turns "a trigger of class k was seen" into logits: ``unsafe`` against ``safe``
  at the chosen probability, and the policy id of class k after ``unsafe\\n``.

Text without triggers scores near 0. Rotary embeddings use a huge base on the dimensions the
head reads, so detection works at any distance (200,000-character documents included).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from .models.formats import haloguard
from .policies import load_constitution

VERSION = 1
"""Bumped whenever the wiring changes, so cached copies are rebuilt."""

DEFAULT_TRIGGERS: dict[str, tuple[str, float]] = {
    "kaboom": ("weapons", 0.99),
    "exfiltrate": ("data_exfiltration", 0.99),
    "hijack": ("prompt_injection", 0.97),
    "wipeout": ("destructive_actions", 0.99),
    "scamalot": ("fraud_scams", 0.9),
    "edgy": ("harassment", 0.6),
    "meh": ("misinformation", 0.3),
}
"""word -> (policy id, P(unsafe) when the word occurs)."""

_HIDDEN, _HEADS, _KV_HEADS, _HEAD_DIM = 64, 4, 2, 16
_SLOW = 7  # head dimension whose rotary frequency is ~0 with the huge base below
_DETECT = 24  # first hidden channel that records "trigger of class k seen"
_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = (
    "the a an and or of to in on for with is are was be this that it you i we they what how why "
    "please can could should would will do does did not no yes hello thanks help me my your our "
    "email send file read write delete run shell command tool call result document web page "
    "report meeting money transfer account password key secret data user agent model answer "
    "question story history chemistry recipe weather code python list bank home directory "
    "args input text url path amount to body subject query"
)


def _tokenizer(words: list[str]):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["[PAD]", "[UNK]", "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    trainer = trainers.WordLevelTrainer(special_tokens=special, min_frequency=1)
    tok.train_from_iterator([" ".join(words)], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = _CHAT_TEMPLATE
    return fast


def _vocabulary(triggers: Mapping[str, tuple[str, float]]) -> list[str]:
    constitution = load_constitution()
    sample = haloguard.user_turn("x", next(iter(haloguard.WHERE)), list(constitution))
    words = set(_CORPUS.split()) | set(triggers) | {haloguard.SAFE, haloguard.UNSAFE, "user", "assistant"}
    words |= set(constitution.ids)
    words |= {w.lower() for w in sample.replace("<", " ").replace(">", " ").split()}
    for surface in haloguard.WHERE:
        words |= {w.lower() for w in haloguard.user_turn("x", surface, []).split()}
    return sorted(words)


def _wire(model, tokenizer, triggers, *, classes: list[str]) -> None:
    """Set every weight by hand: see the module docstring."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        emb = model.get_input_embeddings().weight
        emb[:, 0] = 1.0  # constant channel
        vocab = tokenizer.get_vocab()
        for word, (policy, _) in triggers.items():
            k = classes.index(policy)
            emb[vocab[word], 1] = 1.0  # "is a trigger" key channel
            emb[vocab[word], 2 + k] = 1.0  # class channel
        base = model.model if hasattr(model, "model") else model
        for layer in base.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.post_attention_layernorm.weight.fill_(1.0)
            layer.self_attn.q_norm.weight.fill_(1.0)
            layer.self_attn.k_norm.weight.fill_(1.0)
        attn = base.layers[0].self_attn
        attn.q_proj.weight[_SLOW, 0] = 1.0
        attn.k_proj.weight[_SLOW, 1] = 1.0
        attn.q_norm.weight[_SLOW] = 12.0
        attn.k_norm.weight[_SLOW] = 12.0
        for k in range(len(classes)):
            attn.v_proj.weight[k, 2 + k] = 1.0
            attn.o_proj.weight[_DETECT + k, k] = 10.0 / math.sqrt(_HIDDEN / 3)  # ~10 on the residual
        base.norm.weight.fill_(1.0)


def _head_weights(probability: float, c: float = 10.0) -> tuple[float, float]:
    """(w_unsafe, w_safe_bias) so softmax([safe, unsafe]) gives ``probability`` when class seen.

    After the final RMSNorm the answer position holds sqrt(H)/sqrt(1+c^2) * (1, c) on the
    constant and detection channels; without a trigger it holds sqrt(H) on the constant one.
    """
    scale = math.sqrt(_HIDDEN) / math.sqrt(1 + c * c)
    bias = 0.6  # safe logit per unit of the constant channel: ~4.8 logits of margin when clean
    target = math.log(probability / (1 - probability))
    return (target + bias * scale) / (c * scale), bias


def _config(vocab_size: int, **kw):
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size, hidden_size=_HIDDEN, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=_HEADS, num_key_value_heads=_KV_HEADS, head_dim=_HEAD_DIM,
        max_position_embeddings=8192, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1e12}, **kw,
    )


def build_generative(directory: str | Path, triggers: Mapping[str, tuple[str, float]] | None = None) -> Path:
    """Save a tiny generative guard in HaloGuard's answer format to ``directory``."""
    from transformers import Qwen3ForCausalLM

    triggers = dict(triggers or DEFAULT_TRIGGERS)
    tokenizer = _tokenizer(_vocabulary(triggers))
    classes = sorted({p for p, _ in triggers.values()})
    vocab = tokenizer.get_vocab()
    config = _config(len(vocab), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model = Qwen3ForCausalLM(config)
    _wire(model, tokenizer, triggers, classes=classes)
    import torch

    with torch.no_grad():
        head = model.lm_head.weight
        _, bias = _head_weights(0.5)
        head[vocab[haloguard.SAFE], 0] = bias
        for word, (policy, probability) in triggers.items():
            k = classes.index(policy)
            w, _ = _head_weights(probability)
            head[vocab[haloguard.UNSAFE], _DETECT + k] = w
            head[vocab[policy], _DETECT + k] = 3.0  # the class's policy id wins after "unsafe\n"
    return _save(model, tokenizer, directory, triggers)


def build_classifier(directory: str | Path, triggers: Mapping[str, tuple[str, float]] | None = None,
                     *, multi_label: bool = True, surface_prefix: str | None = None) -> Path:
    """Save a tiny sequence classifier: labels ``unsafe`` + policy ids (sigmoid), or safe/unsafe."""
    from transformers import Qwen3ForSequenceClassification

    triggers = dict(triggers or DEFAULT_TRIGGERS)
    tokenizer = _tokenizer(_vocabulary(triggers))
    classes = sorted({p for p, _ in triggers.values()})
    labels = ["unsafe", *classes] if multi_label else ["safe", "unsafe"]
    config = _config(
        len(tokenizer.get_vocab()), pad_token_id=tokenizer.pad_token_id, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
    )
    if surface_prefix:
        config.haloguard_surface_prefix = surface_prefix
    model = Qwen3ForSequenceClassification(config)
    _wire(model, tokenizer, triggers, classes=classes)
    import torch

    with torch.no_grad():
        score = model.score.weight
        for word, (policy, probability) in triggers.items():
            k = classes.index(policy)
            w, bias = _head_weights(probability)
            if multi_label:  # sigmoid(w*x_k - bias*x_0) == probability
                score[0, _DETECT + k] = w
                score[0, 0] = -bias
                score[1:, _DETECT + k] = -(abs(w) + 5.0)  # other policies: firmly not this class
                score[1 + k, _DETECT + k] = w
                score[1 + k, 0] = -bias
            else:
                score[1, _DETECT + k] = w
                score[0, 0] = bias
    return _save(model, tokenizer, directory, triggers)


def _save(model, tokenizer, directory: str | Path, triggers) -> Path:
    directory = Path(directory)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "triggers.json").write_text(json.dumps(triggers, indent=1))
    return directory
