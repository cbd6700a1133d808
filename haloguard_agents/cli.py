"""The ``haloguard-agents`` command.

Exit codes scripts can rely on: 0 everything allowed, 1 something blocked (redact, ask or
deny), 2 usage or input error, 3 the model could not be loaded. Errors are one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .config import FirewallConfig
from .content import Content, Surface
from .errors import ConfigError, HaloGuardError, ModelLoadError
from .verdict import Decision

OK, BLOCKED, USAGE, MODEL = 0, 1, 2, 3


class UsageError(HaloGuardError):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ModelLoadError as e:
        return _fail(e, MODEL)
    except (ConfigError, UsageError) as e:
        return _fail(e, USAGE)
    except HaloGuardError as e:
        return _fail(e, USAGE)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return OK


def _fail(error: Exception, code: int) -> int:
    print(f"haloguard-agents: error: {error}", file=sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haloguard-agents", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("policies", help="list the constitution")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per policy")
    p.set_defaults(run=_policies)

    def scoring(p: argparse.ArgumentParser) -> None:
        p.add_argument("--surface", choices=[s.value for s in Surface], default=None,
                       help="where the content comes from (default user_input)")
        p.add_argument("--model", default=None, help="builtin, tiny, a checkpoint directory or a cached hub id")
        p.add_argument("--config", type=Path, default=None, help="FirewallConfig YAML file")
        p.add_argument("--device", default=None, help="auto, cpu, cuda, ...")
        p.add_argument("--json", action="store_true", help="print JSON decisions")

    p = sub.add_parser("check", help="check one text; '-' reads standard input")
    p.add_argument("text")
    scoring(p)
    p.set_defaults(run=_check)

    p = sub.add_parser("scan", help="check every row of a JSONL file (field 'text'); '-' reads standard input")
    p.add_argument("file")
    scoring(p)
    p.set_defaults(run=_scan)

    from .eval.cli import add_eval_command

    add_eval_command(sub)
    from .demo import add_demo_command

    add_demo_command(sub)
    return parser


def _policies(args: argparse.Namespace) -> int:
    from .policies import load_constitution

    constitution = load_constitution()
    if args.json:
        print(json.dumps([p.model_dump(mode="json") for p in constitution], ensure_ascii=False, indent=1))
        return OK
    width = max(len(p.id) for p in constitution)
    for p in constitution:
        print(f"{p.id:<{width}}  {p.group:<7}  {len(p.subcategories):>3} subcategories  "
              f"{len(p.examples):>3} pairs  {p.name}")
    print(f"{len(constitution)} policies")
    return OK


def firewall_from_args(args: argparse.Namespace):
    """The firewall a scoring command uses: --config, then --model / --device over it."""
    from .firewall import Firewall
    from .models import load_guard

    config = FirewallConfig.load(args.config) if args.config else FirewallConfig()
    config.audit.log = False
    model = args.model or config.guard.model
    device = args.device or config.guard.device
    return Firewall(load_guard(model, device=device, local_files_only=config.guard.local_files_only), config=config)


def content_from_row(row: dict[str, Any], default: Surface) -> Content:
    """A JSONL row (fields of shared/data: text, kind, ...) or a tool call as content."""
    surface = Surface(row["surface"]) if row.get("surface") else default
    text = row.get("text")
    if surface is Surface.TOOL_CALL:
        call = _as_tool_call(text)
        if call is not None:
            return Content.tool_call(*call)
    if text is None:
        raise UsageError("row has no 'text' field")
    return Content(surface, text)


def _as_tool_call(value: Any) -> tuple[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict):
        name = value.get("function") or value.get("name") or value.get("tool")
        if isinstance(name, str):
            return name, value.get("args", value.get("arguments", {}))
    return None


def _check(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    surface = Surface(args.surface or Surface.USER_INPUT)
    content = content_from_row({"text": text}, surface)
    decision = firewall_from_args(args).check(content)
    _print(decision, args.json)
    return OK if decision.allowed else BLOCKED


def _scan(args: argparse.Namespace) -> int:
    surface = Surface(args.surface or Surface.USER_INPUT)
    contents = list(_rows(args.file, surface))
    firewall = firewall_from_args(args)
    blocked = False
    for start in range(0, len(contents), 32):
        for decision in firewall.check_many(contents[start:start + 32]):
            _print(decision, args.json)
            blocked |= not decision.allowed
    return BLOCKED if blocked else OK


def read_jsonl(file: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a UsageError naming file:line otherwise."""
    try:
        stream = sys.stdin if str(file) == "-" else open(file, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as e:
        raise UsageError(f"cannot read {file}: {e.strerror or e}") from None
    with stream:
        for n, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise UsageError(f"{file}:{n}: not valid JSON") from None
            if not isinstance(row, dict):
                raise UsageError(f"{file}:{n}: not a JSON object")
            yield n, row


def _rows(file: str, surface: Surface) -> Iterator[Content]:
    for n, row in read_jsonl(file):
        try:
            yield content_from_row(row, surface)
        except (UsageError, ValueError) as e:
            raise UsageError(f"{file}:{n}: {e}") from None


def _print(decision: Decision, as_json: bool) -> None:
    if as_json:
        data = decision.model_dump(mode="json")
        data["explanation"] = decision.explain()
        print(json.dumps(data, ensure_ascii=False))
        return
    verdict = decision.verdict
    score = f"unsafe={verdict.unsafe:.2f}" if verdict else "unscored"
    top = "  ".join(f"{p} {s:.2f}" for p, s in decision.top_policies if s >= 0.01)
    print(f"{decision.action.value:<6} {decision.surface.value:<18} {score}  {top}  ({decision.latency_ms:.0f} ms)")
    if decision.reasons:
        print(f"       {decision.explain()}")


if __name__ == "__main__":
    sys.exit(main())
