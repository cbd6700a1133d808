"""HaloGuard for LlamaIndex: guarded retrieval, query and chat engines, and agent tools.

Every decision is audited by the firewall and also emitted as a ``HaloGuardDecisionEvent``
through LlamaIndex instrumentation.
"""

from .engines import GuardedChatEngine, GuardedQueryEngine
from .events import HaloGuardDecisionEvent
from .postprocessor import GuardNodePostprocessor
from .tools import GuardedTool, ToolApprovalRequest, guard_tool, guard_tools

__version__ = "0.1.0"

__all__ = [
    "GuardNodePostprocessor", "GuardedChatEngine", "GuardedQueryEngine", "GuardedTool", "HaloGuardDecisionEvent",
    "ToolApprovalRequest", "guard_tool", "guard_tools",
]
