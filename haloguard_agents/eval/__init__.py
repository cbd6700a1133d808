"""Measuring a guard on labelled data: ``haloguard-agents eval``.

``metrics`` holds pure functions over (label, predicted, score) rows, ``runner`` reads JSONL
files and runs them through a firewall, ``report`` renders the summary, the Markdown report and
its plots, ``cli`` wires the subcommand.
"""

from .metrics import THRESHOLDS, Counts, Scored

__all__ = ["THRESHOLDS", "Counts", "Scored"]
