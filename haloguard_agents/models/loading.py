"""``load_guard``: a local directory or a hub id, offline by default, once per process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .base import Guard

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_loaded: dict[tuple, Any] = {}
_lock = threading.Lock()


def load_guard(
    path_or_id: str | Path = "builtin",
    *,
    device: str | None = "auto",
    dtype: str | None = "auto",
    local_files_only: bool = True,
    revision: str | None = None,
    policies: list[str] | None = None,
    window_tokens: int | None = None,
    window_overlap: int = 64,
    batch_size: int = 16,
) -> Guard:
    """Load a guard model; a second call with the same arguments returns the same guard.

    ``path_or_id`` is ``"builtin"`` (the embedded default model), a local checkpoint
    directory, or a Hugging Face hub id. Hub ids resolve from the local cache only unless
    ``local_files_only=False``: nothing touches the network by default.
    An ``http(s)://HOST/v1#MODEL`` URL is a served guard (see ``remote.load_remote``).
    """
    if str(path_or_id).startswith(("http://", "https://")):
        from .remote import load_remote

        return load_remote(str(path_or_id), policies=policies)
    if str(path_or_id) == "builtin":
        from .builtin import builtin_dir

        path_or_id = builtin_dir()
    elif str(path_or_id) == "tiny":
        path_or_id = _tiny_checkpoint()
    key = (str(path_or_id), device, dtype, local_files_only, revision,
           tuple(policies) if policies else None, window_tokens, window_overlap, batch_size)
    with _lock:
        if key not in _loaded:
            directory = resolve(path_or_id, local_files_only=local_files_only, revision=revision)
            _loaded[key] = _load(directory, str(path_or_id), device=device, dtype=dtype,
                                 policies=policies, window_tokens=window_tokens,
                                 window_overlap=window_overlap, batch_size=batch_size)
        return _loaded[key]


def cache_dir() -> Path:
    """Where converted and built models live: ``$HALOGUARD_CACHE`` or the user cache directory."""
    root = os.environ.get("HALOGUARD_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "haloguard-agents"
    return Path(root)


def _tiny_checkpoint() -> Path:
    """The smoke-test checkpoint of ``haloguard_agents.testing``, built once into the cache."""
    from .. import testing

    target = cache_dir() / f"tiny-generative-{testing.VERSION}"
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            testing.build_generative(Path(tmp) / "model")
            try:
                os.replace(Path(tmp) / "model", target)
            except OSError:  # another process won the race
                if not (target / "config.json").is_file():
                    raise
    return target


def resolve(path_or_id: str | Path, *, local_files_only: bool = True, revision: str | None = None) -> Path:
    """The local directory holding the checkpoint, or a ModelLoadError that says what to do."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} has no config.json: it is not a transformers checkpoint directory")
        return path
    text = str(path_or_id)
    if path.exists():
        raise ModelLoadError(f"{text} is a file; pass the checkpoint directory that holds config.json")
    if not _HUB_ID.match(text) or text.startswith((".", "/", "~")):
        raise ModelLoadError(f"model directory not found: {text}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(text, revision=revision, local_files_only=local_files_only))
    except LocalEntryNotFoundError:
        if local_files_only:
            raise ModelLoadError(
                f"{text} is not in the local Hugging Face cache and loading is offline by default. "
                f"Download it where there is network (`hf download {text} --local-dir DIR`) and pass "
                "DIR, or pass local_files_only=False to allow downloading."
            ) from None
        raise ModelLoadError(f"could not download {text}: the hub is unreachable") from None
    except HfHubHTTPError as e:
        raise ModelLoadError(f"could not download {text}: {e}") from None


def fingerprint(directory: Path) -> str:
    """A short revision for decision records: the hub commit if known, else a content hash."""
    if directory.parent.name == "snapshots":
        return directory.name[:12]
    h = hashlib.sha256((directory / "config.json").read_bytes())
    for f in sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:12]


def _load(directory: Path, name: str, *, device, dtype, policies, window_tokens, window_overlap, batch_size) -> Guard:
    import transformers

    transformers.utils.logging.disable_progress_bar()
    from . import lexical
    from .transformers_guard import ClassifierGuard, GenerativeGuard, pick_device, pick_dtype

    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read {directory / 'config.json'}: {e}") from None
    architectures = config.get("architectures") or []
    generative = any(a.endswith(("ForCausalLM", "ForConditionalGeneration")) for a in architectures)
    classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
    if not (generative or classifier):
        raise ModelLoadError(
            f"{directory}: unsupported checkpoint (architectures={architectures}); expected a causal LM "
            "(generative guard) or a *ForSequenceClassification model"
        )
    dev = pick_device(device)
    auto = transformers.AutoModelForCausalLM if generative else transformers.AutoModelForSequenceClassification
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = auto.from_pretrained(directory, local_files_only=True, dtype=pick_dtype(dtype, dev)).to(dev)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load the checkpoint in {directory}: {e}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{directory}: a fast tokenizer (tokenizer.json) is required for token windows")
    model_id = f"{Path(name).name if Path(name).is_dir() else name}@{fingerprint(directory)}"
    limit = getattr(model.config, "max_position_embeddings", 512) or 512
    common = dict(model_id=model_id, window_overlap=window_overlap, batch_size=batch_size)
    if generative:
        return GenerativeGuard(model, tokenizer, policies=policies,
                               window_tokens=window_tokens or min(2048, limit // 2), **common)
    if policies:
        raise ModelLoadError("`policies` selects prompt policies of generative guards; classifiers score their own labels")
    head = directory / lexical.FILE
    return ClassifierGuard(model, tokenizer, lexical_head=lexical.LexicalHead.load(head) if head.is_file() else None,
                           window_tokens=window_tokens or min(limit, 512) - 32, **common)
