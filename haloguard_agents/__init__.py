"""haloguard-agents: a safety firewall for everything an AI agent reads and does.

Importing the package does not import torch; models load on first use.
"""

from .audit import AuditSink, JsonlSink, LoggingSink, MemorySink
from .config import FirewallConfig, PolicyConfig, SurfaceConfig
from .content import Content, Surface, normalize, render_tool_call
from .errors import ConfigError, GuardError, HaloGuardError, ModelLoadError
from .firewall import Firewall
from .models import Guard, load_guard
from .permissions import Arg, ArgPredicate, ToolRule, allow, ask, deny
from .policies import Constitution, Policy, load_constitution
from .verdict import Action, Decision, Reason, Verdict

__version__ = "0.1.0"

__all__ = [
    "Action", "Arg", "ArgPredicate", "AuditSink", "ConfigError", "Constitution", "Content", "Decision", "Firewall",
    "FirewallConfig", "Guard", "GuardError", "HaloGuardError", "JsonlSink", "LoggingSink", "MemorySink",
    "ModelLoadError", "Policy", "PolicyConfig", "Reason", "Surface", "SurfaceConfig", "ToolRule", "Verdict",
    "allow", "ask", "deny", "load_constitution", "load_guard", "normalize", "render_tool_call",
]

import logging as _logging

_logging.getLogger("haloguard_agents").addHandler(_logging.NullHandler())
