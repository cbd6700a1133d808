"""HaloGuard for LangGraph and LangChain v1.

* ``guard_node`` / ``guard_condition``: check user input in a ``StateGraph`` and end the turn
  with a refusal when it is blocked.
* ``ToolGate``: a drop-in ``ToolNode`` that checks every tool call before it runs (rules,
  guard, human approval through ``interrupt()``) and every result before the model sees it.
* ``HaloGuardMiddleware``: the same for ``create_agent`` (needs ``langchain``).
* ``HaloGuardCallbackHandler``: chains, retrievers and tools outside a graph, sync or async;
  it blocks by raising ``HaloGuardBlocked``.
"""

from ._core import DEFAULT_REFUSAL, META
from .callbacks import HaloGuardBlocked, HaloGuardCallbackHandler
from .nodes import GuardNode, ToolGate, guard_condition, guard_node

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_REFUSAL", "META", "GuardNode", "HaloGuardBlocked",
    "HaloGuardCallbackHandler", "HaloGuardMiddleware", "ToolGate", "guard_condition", "guard_node",
]


def __getattr__(name: str):
    if name == "HaloGuardMiddleware":  # langchain is an optional dependency (extra "agents")
        from .middleware import HaloGuardMiddleware

        return HaloGuardMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
