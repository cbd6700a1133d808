"""The constitution: safety policies loaded from YAML and validated on load.

Policies are data used four ways: the taxonomy every verdict is expressed in, the policy text
given to generative guards, the application's configuration keys, and a source of matched
safe/unsafe examples. Mappings let verdicts from other taxonomies (Llama Guard, Qwen3Guard,
MLCommons, OpenAI moderation) be expressed in our policy ids.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .errors import ConfigError

_ID = r"^[a-z][a-z0-9_]*$"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

LLAMA_GUARD = {
    "S1": "Violent Crimes", "S2": "Non-Violent Crimes", "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation", "S5": "Defamation", "S6": "Specialized Advice",
    "S7": "Privacy", "S8": "Intellectual Property", "S9": "Indiscriminate Weapons",
    "S10": "Hate", "S11": "Suicide & Self-Harm", "S12": "Sexual Content", "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}
QWEN3GUARD = (
    "Violent", "Non-violent Illegal Acts", "Sexual Content or Sexual Acts", "PII",
    "Suicide & Self-Harm", "Unethical Acts", "Politically Sensitive Topics",
    "Copyright Violation", "Jailbreak",
)
MLCOMMONS = (
    "vcr", "src", "cse", "ssh", "iwp", "ipv", "dfm", "ncr", "hte", "prv",
    "spc_ele", "spc_fin", "spc_hlt", "spc_lgl", "sxc_prn",
)
OPENAI_MODERATION = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)

MIN_SUBCATEGORIES = 20
MIN_EXAMPLES = 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subcategory(_Strict):
    id: str = Field(pattern=_ID)
    description: str = Field(min_length=3)


class Example(_Strict):
    """A matched pair: same vocabulary, different intent."""

    lang: str = Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]+)?$")
    safe: str = Field(min_length=3)
    unsafe: str = Field(min_length=3)
    surface: Literal[
        "user_input", "model_output", "tool_call", "tool_result", "retrieved_document"
    ] = "user_input"


class Mappings(_Strict):
    llama_guard: tuple[str, ...] = ()
    qwen3guard: tuple[str, ...] = ()
    mlcommons: tuple[str, ...] = ()
    openai_moderation: tuple[str, ...] = ()

    @field_validator("llama_guard", "qwen3guard", "mlcommons", "openai_moderation")
    @classmethod
    def _known(cls, values: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        known, what = _TAXONOMIES[info.field_name]
        for v in values:
            if v not in known:
                raise ValueError(f"unknown {what} {v!r}; expected one of {sorted(known)}")
        return values


_TAXONOMIES = {
    "llama_guard": (LLAMA_GUARD, "Llama Guard category"),
    "qwen3guard": (QWEN3GUARD, "Qwen3Guard category"),
    "mlcommons": (MLCOMMONS, "MLCommons hazard"),
    "openai_moderation": (OPENAI_MODERATION, "OpenAI moderation category"),
}


class Policy(_Strict):
    id: str = Field(pattern=_ID)
    name: str = Field(min_length=3)
    group: Literal["content", "agentic"]
    definition: str = Field(min_length=20)
    unsafe: tuple[str, ...] = Field(min_length=1)
    safe: tuple[str, ...] = Field(min_length=1)
    subcategories: tuple[Subcategory, ...]
    examples: tuple[Example, ...]
    maps_to: Mappings = Mappings()

    @model_validator(mode="after")
    def _minimums(self) -> Policy:
        if len(self.subcategories) < MIN_SUBCATEGORIES:
            raise ValueError(
                f"needs at least {MIN_SUBCATEGORIES} subcategories, has {len(self.subcategories)}"
            )
        ids = [s.id for s in self.subcategories]
        if len(set(ids)) != len(ids):
            raise ValueError("subcategory ids must be unique within a policy")
        if len(self.examples) < MIN_EXAMPLES:
            raise ValueError(f"needs at least {MIN_EXAMPLES} example pairs, has {len(self.examples)}")
        if sum(e.lang != "en" for e in self.examples) * 3 < len(self.examples):
            raise ValueError("at least a third of the example pairs must be in languages other than English")
        return self


class Constitution:
    """An ordered, read-only collection of policies, addressable by id."""

    def __init__(self, policies: list[Policy]):
        self._by_id = {p.id: p for p in policies}
        if len(self._by_id) != len(policies):
            dupes = sorted({p.id for p in policies if sum(q.id == p.id for q in policies) > 1})
            raise ConfigError(f"policy ids must be unique; defined more than once: {', '.join(dupes)}")
        self.policies = tuple(policies)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies)

    def __len__(self) -> int:
        return len(self.policies)

    def __contains__(self, policy_id: object) -> bool:
        return policy_id in self._by_id

    def __getitem__(self, policy_id: str) -> Policy:
        try:
            return self._by_id[policy_id]
        except KeyError:
            raise KeyError(f"unknown policy {policy_id!r}; see `haloguard-agents policies`") from None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def select(self, ids: list[str] | tuple[str, ...] | None) -> Constitution:
        """The sub-constitution of the given ids, in constitution order (all when None)."""
        if ids is None:
            return self
        wanted = set(ids)
        for i in wanted:
            self[i]
        return Constitution([p for p in self.policies if p.id in wanted])

    def from_taxonomy(self, taxonomy: str, label: str) -> list[str]:
        """Our policy ids that a label of another taxonomy maps to (e.g. "llama_guard", "S9")."""
        return [p.id for p in self.policies if label in getattr(p.maps_to, taxonomy)]


def policies_dir() -> Path:
    """Where the shipped YAML files are: inside the installed package, or the source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_policies", here.parent / "policies"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("the constitution's YAML files are missing from this installation")


def load_policy(path: Path) -> Policy:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - safe loader
        return Policy.model_validate(data)
    except (yaml.YAMLError, ValidationError) as e:
        raise ConfigError(f"invalid policy file {path.name}: {_one_line(e)}") from e
    except UnicodeDecodeError:
        raise ConfigError(f"invalid policy file {path.name}: not UTF-8 text") from None


def _one_line(e: Exception) -> str:
    return re.sub(r"\s+", " ", str(e)).strip()[:500]


@functools.cache
def _load_dir(directory: Path) -> Constitution:
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError(f"no policy files (*.yaml) in {directory}")
    return Constitution([load_policy(f) for f in files])


def load_constitution(directory: str | Path | None = None) -> Constitution:
    """Load and validate every ``*.yaml`` policy in ``directory`` (the shipped set by default).

    Files are ordered by name, which is why they carry a numeric prefix.
    """
    return _load_dir(Path(directory).resolve() if directory else policies_dir())
