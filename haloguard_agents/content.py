"""What is scored and where it came from.

Everything that crosses an agent boundary becomes a ``Content``: its surface, its text and
where it came from. Tool calls render to one canonical text (tool name, then flattened
arguments with sorted keys) so nested, non-string and encoded arguments are all scored.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Surface(StrEnum):
    USER_INPUT = "user_input"
    MODEL_OUTPUT = "model_output"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    RETRIEVED_DOCUMENT = "retrieved_document"


MAX_DEPTH = 12
"""Nesting below this depth is summarised, not walked (guards against pathological inputs)."""

# Zero-width, soft hyphen, bidi embeddings/overrides/isolates, BOM, invisible math operators.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)
# C0/C1 controls except tab, newline and carriage return.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# JSON, JavaScript and Python escapes: a surrogate pair first, then any one code unit.
_ESCAPE = re.compile(r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")


def to_text(value: Any) -> str:
    """Any payload as text: bytes decoded leniently, structures as sorted JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if value is None:
        return ""
    if isinstance(value, (Mapping, list, tuple)):
        return "\n".join(f"{k}: {v}" for k, v in flatten(value))
    return str(value)


# Cyrillic and Greek letters that look like Latin ones; folded only inside mixed-script words.
_LOOKALIKES = str.maketrans(
    "аеорсухіјѕԁһАВЕКМН"
    "ОРСТХІЈЅοανικρΑΒΕΖ"
    "ΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdhABEKMHOPCTXIJSoavikpABEZHIKMNOPTYX",
)
_LATIN = re.compile("[A-Za-z]")
_NON_LATIN_LOOKALIKE = re.compile("[Ͱ-ϿЀ-ԯ]")
_WORD = re.compile(r"\w+")


def _fold_word(match: re.Match[str]) -> str:
    word = match.group(0)
    if _LATIN.search(word) and _NON_LATIN_LOOKALIKE.search(word):
        return word.translate(_LOOKALIKES)
    return word


def _unescape(match: re.Match[str]) -> str:
    high, low, unit = match.groups()
    if unit is not None:
        return chr(int(unit, 16))
    return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00)


def normalize(text: str) -> str:
    """``\\uXXXX`` escapes decoded, NFKC, invisible and bidi controls removed, other controls made spaces.

    Homoglyph tricks that NFKC folds (full-width, ligatures, mathematical letters) are undone;
    zero-width joiners splitting a word ("ig\u200bnore") no longer split it; Cyrillic or Greek
    look-alikes inside an otherwise Latin word ("p\u0430ssword") become Latin.
    """
    if "\\u" in text:  # JSON that was dumped as ASCII; "\\u0069gnore" spelling "ignore"
        text = _ESCAPE.sub(_unescape, text)
    if _SURROGATE.search(text):  # not encodable: a model cannot read it, so replace it
        text = _SURROGATE.sub("\ufffd", text)
    text = unicodedata.normalize("NFKC", text)
    text = _TAGS.sub("", text)
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub(" ", text)
    if _LATIN.search(text) and _NON_LATIN_LOOKALIKE.search(text):
        text = _WORD.sub(_fold_word, text)
    return text


def decoded_views(text: str, limit: int = 8) -> list[str]:
    """Text hidden in ``text``: Unicode tag characters (invisible ASCII) and base64 runs."""
    views = [
        "".join(chr(ord(c) - 0xE0000) for c in run if 0x20 <= ord(c) - 0xE0000 < 0x7F)
        for run in _TAGS.findall(text)
    ]
    views = [v for v in views if v.strip()][:limit]
    for match in _BASE64.finditer(text):
        blob = match.group(0)
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), altchars=b"-_" if "-" in blob or "_" in blob else None)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if len(decoded) >= 8 and sum(c.isprintable() or c.isspace() for c in decoded) >= 0.95 * len(decoded):
            views.append(decoded)
            if len(views) >= limit:
                break
    return views


def flatten(value: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """Leaves of a nested structure as (dotted.path[index], text) pairs, keys sorted.

    Strings holding JSON objects or arrays are parsed and walked too, so an argument like
    ``'{"cmd": "rm -rf /"}'`` is scored as what it contains.
    """
    if depth > MAX_DEPTH:
        return [(prefix, "<nested too deep: not expanded>")]
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in "{[" and len(stripped) < 1_000_000:
            try:
                parsed = json.loads(stripped)
            except (ValueError, RecursionError):
                parsed = None
            if isinstance(parsed, (dict, list)):
                return flatten(parsed, prefix, depth + 1)
        return [(prefix, value)]
    if isinstance(value, Mapping):
        out: list[tuple[str, str]] = []
        for key in sorted(value, key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(flatten(value[key], path, depth + 1))
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        out = []
        for i, item in enumerate(items):
            out.extend(flatten(item, f"{prefix}[{i}]", depth + 1))
        return out
    if isinstance(value, float) and value != value:
        return [(prefix, "NaN")]
    if isinstance(value, bool) or value is None:
        return [(prefix, json.dumps(value))]
    return [(prefix, to_text(value))]


_DECODER = json.JSONDecoder(strict=False)  # normalized JSON may hold decoded control characters
_SPACE = re.compile(r"[ \t\n\r]*")
_RECORD_LINE = re.compile(r"^([\w.-]*\[\d+\])(?:[.\[][^\n]*?)?: ", re.M)
MAX_RECORDS = 128
"""Longer lists are read a few neighbouring records at a time, so cost stays near a plain text's."""


def record_spans(text: str) -> list[tuple[int, int]]:
    """``text`` cut before each record of a list, so a classifier can read the records apart.

    A record is an item of a JSON array at the top level or in a top-level object's field, or
    a group of ``path[i]...: value`` lines as ``flatten`` writes them. The spans cover all of
    ``text``; text that holds fewer than two records is one span.
    """
    try:
        starts = _json_records(text)
    except (ValueError, IndexError, RecursionError):
        starts = []
    if len(starts) < 2:
        starts, key = [], None
        for match in _RECORD_LINE.finditer(text):
            if match.group(1) != key:
                key = match.group(1)
                starts.append(match.start())
    if len(starts) < 2:
        return [(0, len(text))]
    starts = starts[::math.ceil(len(starts) / MAX_RECORDS)]
    cuts = [0, *starts[1:], len(text)]
    return list(zip(cuts, cuts[1:]))


def _skip(text: str, i: int) -> int:
    """The index of the first non-space character from ``i``."""
    return _SPACE.match(text, i).end()  # type: ignore[union-attr]  # the pattern matches the empty string


def _json_records(text: str) -> list[int]:
    """Where the items of the top-level JSON array, or of the top-level object's arrays, start.

    Malformed JSON raises ``ValueError`` (or ``IndexError`` at a cut-off end), as ``_items`` does.
    """
    i = _skip(text, 0)
    if text[i:i + 1] == "[":
        return _items(text, i)[0]
    if text[i:i + 1] != "{":
        return []
    starts: list[int] = []
    i = _skip(text, i + 1)
    while text[i] != "}":
        _, i = _DECODER.raw_decode(text, i)  # the key
        i = _skip(text, i)
        if text[i] != ":":
            raise ValueError("not a JSON object")
        i = _skip(text, i + 1)
        if text[i] == "[":
            found, i = _items(text, i)
            starts += found
        else:
            _, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i] == ",":
            i = _skip(text, i + 1)
        elif text[i] != "}":
            raise ValueError("not a JSON object")
    return starts


def _items(text: str, i: int) -> tuple[list[int], int]:
    """The start of each item of the JSON array at ``text[i] == "["``, and the index after it."""
    starts: list[int] = []
    i = _skip(text, i + 1)
    while text[i] != "]":
        starts.append(i)
        _, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i] == ",":
            i = _skip(text, i + 1)
        elif text[i] != "]":
            raise ValueError("not a JSON array")
    return starts, i + 1


def render_tool_call(name: str, args: Any) -> str:
    """The canonical text of a tool call: ``tool: NAME`` then one ``args.path: value`` line per leaf."""
    if not isinstance(args, (Mapping, list, tuple)):
        args = {"input": args}
    lines = [f"tool: {name}"]
    lines += [f"args.{path}: {text}" if not path.startswith("[") else f"args{path}: {text}"
              for path, text in flatten(args)]
    return "\n".join(lines)


@dataclass(frozen=True)
class Content:
    """One thing to score: the text, the surface it crossed, and where it came from.

    ``source`` names the origin (a tool name, a document id, a URL); ``meta`` carries anything
    an integration wants to see again in the decision record.
    """

    surface: Surface
    text: str
    source: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "surface", Surface(self.surface))
        if not isinstance(self.text, str):
            object.__setattr__(self, "text", to_text(self.text))

    @classmethod
    def tool_call(cls, name: str, args: Any, *, source: str | None = None,
                  meta: Mapping[str, Any] | None = None) -> Content:
        """A tool call as canonical text; ``meta`` keeps ``tool`` and ``args`` for the rules."""
        return cls(Surface.TOOL_CALL, render_tool_call(name, args), source=source or name,
                   meta={**(meta or {}), "tool": name, "args": args})

    @functools.cached_property
    def scored_text(self) -> str:
        """What the guard sees: normalized text plus decoded views of hidden payloads.

        Computed once: the cache key, the firewall and the model all read it.
        """
        text = normalize(self.text)
        # Decode before and after normalization: tag characters vanish in it, and base64
        # split by zero-width characters only appears after it.
        views = list(dict.fromkeys(decoded_views(self.text) + decoded_views(text)))[:8]
        if views:
            text += "".join(f"\n[decoded]: {normalize(v)}" for v in views)
        return text

    @functools.cached_property
    def records(self) -> list[tuple[int, int]]:
        """Spans of ``scored_text`` to read apart: the records of a list in what the agent reads.

        A classifier that pools a window into one vector reads ten harmless records side by
        side as something else; each record alone is what it is. Tool calls and messages are
        read whole.
        """
        if self.surface in (Surface.TOOL_RESULT, Surface.RETRIEVED_DOCUMENT):
            return record_spans(self.scored_text)
        return [(0, len(self.scored_text))]

    @functools.cached_property
    def key(self) -> str:
        """Content hash (surface + scored text): the cache and exactly-once key."""
        h = hashlib.sha256(self.surface.value.encode())
        h.update(b"\0")
        h.update(self.scored_text.encode("utf-8", errors="surrogatepass"))
        return h.hexdigest()


def as_contents(items: Sequence[Content | str]) -> list[Content]:
    """What a guard scores: Contents as given, anything else (a plain string) as a user input.

    A bare string is refused rather than scored character by character.
    """
    if isinstance(items, (str, bytes, Content)):
        raise TypeError("score() takes a list: guard.score([text]) or "
                        "guard.score([Content(Surface.TOOL_RESULT, text)])")
    return [c if isinstance(c, Content) else Content(Surface.USER_INPUT, c) for c in items]
