"""``FirewallConfig``: thresholds, actions and error handling per surface and per policy.

Loadable from YAML (or any mapping), validated on load::

    shadow: false
    surfaces:
      tool_call: {threshold: 0.4, ask_threshold: 0.2, on_error: deny}
      retrieved_document: {threshold: 0.6, on_error: log}
    policies:
      financial_advice: {action: log}
      prompt_injection: {threshold: 0.3}
    rules:
      - {tool: shell, action: deny, when: [{arg: command, matches: "rm\\\\s+-rf"}]}
    audit: {jsonl: decisions.jsonl}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .content import Surface
from .errors import ConfigError
from .permissions import ToolRule
from .verdict import Action


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SurfaceConfig(_Model):
    """How one surface turns scores into actions."""

    enabled: bool = True
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="P(unsafe) at or above which `action` applies")
    action: Action = Action.DENY
    ask_threshold: float | None = Field(None, ge=0.0, le=1.0, description="scores in [ask_threshold, threshold) ask a human")
    on_error: Action = Action.DENY

    @model_validator(mode="after")
    def _band(self) -> SurfaceConfig:
        if self.ask_threshold is not None and self.ask_threshold > self.threshold:
            raise ValueError("ask_threshold must not exceed threshold")
        return self


class PolicyConfig(_Model):
    """Overrides for one policy; unset fields fall back to the surface's."""

    enabled: bool = True
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    action: Action | None = None
    surfaces: dict[Surface, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict, description="threshold per surface")

    def threshold_for(self, surface: Surface, default: float) -> float:
        return self.surfaces.get(surface, self.threshold if self.threshold is not None else default)


class AuditConfig(_Model):
    log: bool = True
    jsonl: Path | None = None
    include_text: bool = False


class GuardConfig(_Model):
    """Which model to load when a firewall is built from configuration alone."""

    model: str = "builtin"
    device: str = "auto"
    local_files_only: bool = True


class FirewallConfig(_Model):
    surfaces: dict[Surface, SurfaceConfig] = Field(default_factory=dict)
    policies: dict[str, PolicyConfig] = Field(default_factory=dict)
    rules: list[ToolRule] = Field(default_factory=list)
    default_tool_action: Action = Field(Action.ALLOW, description="for tool calls no rule matches")
    shadow: bool = Field(False, description="record decisions but never block")
    audit: AuditConfig = Field(default_factory=AuditConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)

    @model_validator(mode="after")
    def _fill_surfaces(self) -> FirewallConfig:
        for surface in Surface:
            self.surfaces.setdefault(surface, SurfaceConfig())
        return self

    def surface(self, surface: Surface) -> SurfaceConfig:
        return self.surfaces[surface]

    def policy(self, policy_id: str) -> PolicyConfig:
        return self.policies.get(policy_id) or _DEFAULT_POLICY

    @classmethod
    def load(cls, source: str | Path | dict[str, Any]) -> FirewallConfig:
        """From a YAML file or a mapping, with errors that name the file and the field."""
        where = "configuration"
        try:
            if isinstance(source, dict):
                data = source
            else:
                where = str(source)
                data = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
            return cls.model_validate(data)
        except OSError as e:
            raise ConfigError(f"cannot read {where}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where} is not UTF-8 text") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{where} is not valid YAML: {e}") from None
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(map(str, first["loc"]))
            raise ConfigError(f"{where}: {loc}: {first['msg']} ({e.error_count()} error(s))") from None


_DEFAULT_POLICY = PolicyConfig()
