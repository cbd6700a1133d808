"""The decision engine: rules + guard + thresholds -> Decision, on every surface, sync and async."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
import yaml

import haloguard_agents.firewall as firewall_module
from haloguard_agents import (
    Action, Arg, ConfigError, Content, Decision, Firewall, FirewallConfig, JsonlSink, MemorySink, Surface, Verdict,
    allow, ask, deny, load_guard,
)

SMALL_POLICIES = ["weapons", "harassment", "misinformation", "prompt_injection", "fraud_scams"]

KABOOM = "please kaboom the bank account"   # weapons 0.99
EDGY = "please edgy the bank account"       # harassment 0.6
MEH = "please meh the bank account"         # misinformation 0.3
CLEAN = "hello, please help me with my chemistry homework"


@pytest.fixture(scope="module")
def small_guard(generative_dir):
    """The real tiny generative checkpoint, prompted with five policies (cheaper per-policy scoring)."""
    return load_guard(generative_dir, policies=SMALL_POLICIES)


def make(guard, config=None, rules=(), sinks=None):
    sink = MemorySink()
    cfg = config if isinstance(config, FirewallConfig) else FirewallConfig.load(config or {})
    fw = Firewall(guard, rules=rules, config=cfg, sinks=[sink] if sinks is None else sinks)
    return fw, sink


class RaisingGuard:
    """Implements the Guard protocol; every call fails (the error path is what is tested)."""

    model_id = "raising@test"

    def __init__(self, exc: Exception | None = None):
        self.exc = exc or RuntimeError("boom")
        self.calls = 0

    def score(self, contents):
        self.calls += 1
        raise self.exc

    async def ascore(self, contents):
        self.calls += 1
        raise self.exc


class WrongCountGuard:
    """Implements the Guard protocol but returns one verdict too many."""

    model_id = "wrong-count@test"

    def score(self, contents):
        return [Verdict(unsafe=0.0)] * (len(contents) + 1)

    async def ascore(self, contents):
        return self.score(contents)


@pytest.fixture
def spy(small_guard, monkeypatch):
    """Counts calls to the real guard's score/ascore."""
    calls = []
    score, ascore = small_guard.score, small_guard.ascore

    def counting_score(contents):
        calls.append(list(contents))
        return score(contents)

    async def counting_ascore(contents):
        calls.append(list(contents))
        return await ascore(contents)

    monkeypatch.setattr(small_guard, "score", counting_score)
    monkeypatch.setattr(small_guard, "ascore", counting_ascore)
    return calls


# -- every surface, sync and async ----------------------------------------------------------------------

SURFACE_CALLS = [
    ("input", lambda text: ((text,), {}), Surface.USER_INPUT, None, None),
    ("output", lambda text: ((text,), {}), Surface.MODEL_OUTPUT, None, None),
    ("tool_call", lambda text: (("post_message", {"body": text, "channel": "general"}), {}), Surface.TOOL_CALL,
     "post_message", "post_message"),
    ("tool_result", lambda text: ((text,), {"tool": "web_fetch"}), Surface.TOOL_RESULT, None, "web_fetch"),
    ("document", lambda text: ((text,), {"source": "doc-7"}), Surface.RETRIEVED_DOCUMENT, None, "doc-7"),
]


@pytest.mark.parametrize("name,build,surface,tool,source", SURFACE_CALLS, ids=[c[0] for c in SURFACE_CALLS])
def test_sync_surface_methods(small_guard, name, build, surface, tool, source):
    fw, sink = make(small_guard)
    method = getattr(fw, f"check_{name}")
    args, kw = build(KABOOM)
    bad = method(*args, **kw)
    args, kw = build(CLEAN)
    good = method(*args, **kw)
    assert isinstance(bad, Decision)
    assert bad.surface is surface and good.surface is surface
    assert bad.action is Action.DENY and bad.intended is Action.DENY and not bad.allowed
    assert [(r.kind, r.policy) for r in bad.reasons] == [("policy", "weapons")]
    assert bad.verdict.unsafe == pytest.approx(0.99, abs=0.02)
    assert good.action is Action.ALLOW and good.allowed and good.reasons == []
    assert good.verdict.unsafe < 0.05
    assert bad.tool == tool and bad.source == source
    assert bad.model == small_guard.model_id
    assert bad.error is None and not bad.shadow
    assert bad.latency_ms > 0
    assert len(bad.content_hash) == 64 and bad.content_hash != good.content_hash
    assert sink.decisions == [bad, good]


@pytest.mark.parametrize("name,build,surface,tool,source", SURFACE_CALLS, ids=[c[0] for c in SURFACE_CALLS])
async def test_async_surface_methods(small_guard, name, build, surface, tool, source):
    fw, sink = make(small_guard)
    method = getattr(fw, f"acheck_{name}")
    args, kw = build(KABOOM)
    bad = await method(*args, **kw)
    args, kw = build(CLEAN)
    good = await method(*args, **kw)
    assert bad.surface is surface and good.surface is surface
    assert bad.action is Action.DENY
    assert [(r.kind, r.policy) for r in bad.reasons] == [("policy", "weapons")]
    assert good.action is Action.ALLOW and good.reasons == []
    assert bad.tool == tool and bad.source == source
    assert sink.decisions == [bad, good]


def test_default_firewall_fixture_blocks_kaboom(firewall, sink):
    d = firewall.check_input("Please kaboom the bank vault tonight")
    assert d.action is Action.DENY
    assert d.reasons[0].policy == "weapons"
    assert d.explain() == "deny: policy weapons 0.99 >= 0.50"
    assert sink.decisions == [d]


def test_check_many_in_order(small_guard):
    fw, sink = make(small_guard)
    contents = [Content(Surface.USER_INPUT, KABOOM), Content(Surface.USER_INPUT, CLEAN),
                Content.tool_call("shell", {"command": "rm -rf /"}), Content(Surface.MODEL_OUTPUT, EDGY)]
    fw.rules.append(deny("shell", when=[Arg("command").match(r"rm\s+-rf")]))
    decisions = fw.check_many(contents)
    assert [d.action for d in decisions] == [Action.DENY, Action.ALLOW, Action.DENY, Action.DENY]
    assert [d.surface for d in decisions] == [c.surface for c in contents]
    assert decisions[2].reasons[0].kind == "rule"
    assert sink.decisions == decisions


async def test_acheck_many_in_order(small_guard):
    fw, _ = make(small_guard)
    decisions = await fw.acheck_many([Content(Surface.USER_INPUT, CLEAN), Content(Surface.USER_INPUT, KABOOM)])
    assert [d.action for d in decisions] == [Action.ALLOW, Action.DENY]


def test_rules_only_firewall():
    fw, sink = make(None, rules=[deny("shell")])
    assert fw.check_input(KABOOM).action is Action.ALLOW
    assert fw.check_tool_call("shell", {"command": "ls"}).action is Action.DENY
    assert fw.check_tool_call("read_file", {"path": "x"}).action is Action.ALLOW
    assert len(sink.decisions) == 3
    assert all(d.model is None for d in sink.decisions)


# -- the lattice ----------------------------------------------------------------------------------------------


def test_action_order_and_max():
    assert Action.ALLOW < Action.LOG < Action.REDACT < Action.ASK < Action.DENY
    assert max([Action.ASK, Action.ALLOW, Action.DENY, Action.LOG]) is Action.DENY
    assert max([Action.LOG, Action.ALLOW]) is Action.LOG
    assert max([Action.REDACT, Action.LOG, Action.ALLOW]) is Action.REDACT
    assert min([Action.ASK, Action.LOG]) is Action.LOG
    assert sorted([Action.DENY, Action.ALLOW, Action.ASK, Action.REDACT, Action.LOG]) == list(Action)
    assert Action.LOG < "ask" and Action.DENY >= "deny" and not Action.ALLOW > "log"
    assert [a.blocks for a in Action] == [False, False, False, True, True]
    assert len({Action.DENY, Action("deny")}) == 1


def test_rule_deny_beats_guard_allow(small_guard, spy):
    fw, _ = make(small_guard, rules=[deny("shell", when=[Arg("command").match(r"\brm\s+-rf\b")])])
    d = fw.check_tool_call("shell", {"command": "rm -rf /tmp/cache"})
    assert d.action is Action.DENY
    assert [r.kind for r in d.reasons] == ["rule"]
    assert d.reasons[0].rule == r"deny shell when command matches /\brm\s+-rf\b/"
    assert d.verdict is None
    assert spy == []  # the guard was not called


async def test_rule_deny_skips_guard_async(small_guard, spy):
    fw, _ = make(small_guard, rules=[deny("shell")])
    d = await fw.acheck_tool_call("shell", {"command": "ls"})
    assert d.action is Action.DENY
    assert spy == []


def test_guard_deny_beats_rule_allow(small_guard, spy):
    fw, _ = make(small_guard, rules=[allow("shell")])
    d = fw.check_tool_call("shell", {"command": KABOOM})
    assert d.action is Action.DENY
    assert [(r.kind, r.action) for r in d.reasons] == [("rule", Action.ALLOW), ("policy", Action.DENY)]
    assert len(spy) == 1


def test_rule_ask_and_guard_deny_is_deny(small_guard):
    fw, _ = make(small_guard, rules=[ask("transfer_money", when=[Arg("amount").greater_than(100)])])
    d = fw.check_tool_call("transfer_money", {"amount": 500, "memo": KABOOM})
    assert d.action is Action.DENY
    assert {(r.kind, r.action) for r in d.reasons} == {("rule", Action.ASK), ("policy", Action.DENY)}
    d = fw.check_tool_call("transfer_money", {"amount": 500, "memo": "rent"})
    assert d.action is Action.ASK
    assert d.action.blocks and not d.allowed
    d = fw.check_tool_call("transfer_money", {"amount": 50, "memo": "rent"})
    assert d.action is Action.ALLOW


def test_rule_ask_runs_guard(small_guard, spy):
    fw, _ = make(small_guard, rules=[ask("transfer_money")])
    fw.check_tool_call("transfer_money", {"amount": 5})
    assert len(spy) == 1


def test_rules_from_config_and_constructor_combine(small_guard):
    fw, _ = make(small_guard, config={"rules": [{"tool": "shell", "action": "deny"}]}, rules=[ask("email")])
    assert [r.tool for r in fw.rules] == ["shell", "email"]
    assert fw.check_tool_call("shell", {"command": "ls"}).action is Action.DENY
    assert fw.check_tool_call("email", {"to": "a"}).action is Action.ASK


def test_default_tool_action_deny(small_guard, spy):
    fw, _ = make(small_guard, config={"default_tool_action": "deny"}, rules=[allow("read_*")])
    d = fw.check_tool_call("delete_file", {"path": "x"})
    assert d.action is Action.DENY
    assert d.reasons[0].rule == "default"
    assert "delete_file" in d.explain()
    assert spy == []
    d = fw.check_tool_call("read_file", {"path": "notes.txt"})
    assert d.action is Action.ALLOW
    assert len(spy) == 1
    # only tool calls get the default
    assert fw.check_input(CLEAN).action is Action.ALLOW


def test_default_tool_action_ask(small_guard):
    fw, _ = make(small_guard, config={"default_tool_action": "ask"})
    assert fw.check_tool_call("anything", {"x": 1}).action is Action.ASK


# -- thresholds -------------------------------------------------------------------------------------------


def test_default_thresholds(small_guard):
    fw, _ = make(small_guard)
    assert fw.check_input(KABOOM).action is Action.DENY
    assert fw.check_input(EDGY).action is Action.DENY      # 0.6 >= 0.5
    assert fw.check_input(MEH).action is Action.ALLOW      # 0.3 < 0.5
    assert fw.check_input(CLEAN).action is Action.ALLOW


def test_surface_threshold(small_guard):
    fw, _ = make(small_guard, config={"surfaces": {"user_input": {"threshold": 0.7},
                                                   "model_output": {"threshold": 0.25}}})
    assert fw.check_input(EDGY).action is Action.ALLOW
    assert fw.check_input(KABOOM).action is Action.DENY
    d = fw.check_output(MEH)
    assert d.action is Action.DENY
    assert (d.reasons[0].policy, d.reasons[0].threshold) == ("misinformation", 0.25)


def test_surface_action(small_guard):
    fw, _ = make(small_guard, config={"surfaces": {"model_output": {"action": "redact"}}})
    d = fw.check_output(KABOOM)
    assert d.action is Action.REDACT and not d.allowed and not d.action.blocks
    assert fw.check_input(KABOOM).action is Action.DENY


def test_policy_threshold_lower_than_surface(small_guard):
    fw, _ = make(small_guard, config={"policies": {"misinformation": {"threshold": 0.2}}})
    d = fw.check_input(MEH)
    assert d.action is Action.DENY
    [r] = d.reasons
    assert (r.kind, r.policy, r.threshold) == ("policy", "misinformation", 0.2)
    assert r.score == pytest.approx(0.3, abs=0.02)
    assert d.explain() == "deny: policy misinformation 0.30 >= 0.20"


def test_policy_threshold_higher_than_surface(small_guard):
    fw, _ = make(small_guard, config={"policies": {"harassment": {"threshold": 0.7}}})
    d = fw.check_input(EDGY)
    assert d.action is Action.ALLOW
    assert d.reasons == []
    assert fw.check_input(KABOOM).action is Action.DENY  # other policies keep the surface threshold


def test_per_surface_policy_threshold(small_guard):
    fw, _ = make(small_guard, config={"policies": {"harassment": {"threshold": 0.4,
                                                                   "surfaces": {"user_input": 0.7}}}})
    assert fw.check_input(EDGY).action is Action.ALLOW
    d = fw.check_output(EDGY)
    assert d.action is Action.DENY
    assert d.reasons[0].threshold == 0.4


def test_disabled_policy(small_guard):
    fw, _ = make(small_guard, config={"policies": {"harassment": {"enabled": False}}})
    d = fw.check_input(EDGY)
    assert d.action is Action.ALLOW and d.reasons == []
    assert d.verdict.unsafe == pytest.approx(0.6, abs=0.02)
    assert fw.check_input(KABOOM).action is Action.DENY


def test_policy_action_override_log(small_guard):
    fw, _ = make(small_guard, config={"policies": {"harassment": {"action": "log"}}})
    d = fw.check_input(EDGY)
    assert d.action is Action.LOG and d.allowed
    [r] = d.reasons
    assert (r.kind, r.policy, r.action) == ("policy", "harassment", Action.LOG)
    assert fw.check_input(KABOOM).action is Action.DENY


def test_ask_band(small_guard):
    fw, _ = make(small_guard, config={"surfaces": {"tool_call": {"threshold": 0.7, "ask_threshold": 0.25}}})
    d = fw.check_tool_call("post", {"text": EDGY})
    assert d.action is Action.ASK
    [r] = d.reasons
    assert (r.kind, r.threshold) == ("guard", 0.25)
    assert "ask band" in r.detail
    assert fw.check_tool_call("post", {"text": MEH}).action is Action.ASK
    assert fw.check_tool_call("post", {"text": CLEAN}).action is Action.ALLOW
    assert fw.check_tool_call("post", {"text": KABOOM}).action is Action.DENY
    # other surfaces keep their defaults
    assert fw.check_input(MEH).action is Action.ALLOW


def test_disabled_surface_skips_guard(small_guard, spy):
    fw, _ = make(small_guard, config={"surfaces": {"tool_result": {"enabled": False}}})
    d = fw.check_tool_result(KABOOM, tool="web")
    assert d.action is Action.ALLOW and d.verdict is None
    assert spy == []


def test_binary_classifier_firewall(binary_classifier_dir):
    fw, _ = make(load_guard(binary_classifier_dir))
    d = fw.check_input(EDGY)
    assert d.action is Action.DENY
    [r] = d.reasons
    assert r.kind == "guard" and r.policy is None
    assert d.explain() == "deny: unsafe 0.60 >= 0.50"
    assert fw.check_input(MEH).action is Action.ALLOW


# -- errors -----------------------------------------------------------------------------------------------------


def test_guard_error_default_deny_on_tool_call():
    guard = RaisingGuard()
    fw, sink = make(guard)
    d = fw.check_tool_call("search", {"q": "weather"})
    assert d.action is Action.DENY
    assert d.error == "RuntimeError: boom"
    [r] = d.reasons
    assert r.kind == "error" and r.action is Action.DENY
    assert "guard failed (RuntimeError: boom)" in r.detail and "on_error=deny" in r.detail
    assert d.verdict is None
    assert d.model == "raising@test"
    assert sink.decisions == [d]


async def test_guard_error_async():
    fw, sink = make(RaisingGuard(ValueError("bad input")))
    d = await fw.acheck_input(CLEAN)
    assert d.action is Action.DENY
    assert d.error == "ValueError: bad input"
    assert sink.decisions == [d]


def test_guard_error_configured_log_on_documents():
    fw, sink = make(RaisingGuard(), config={"surfaces": {"retrieved_document": {"on_error": "log"}}})
    d = fw.check_document("some page", source="kb-1")
    assert d.action is Action.LOG and d.allowed
    assert d.error == "RuntimeError: boom"
    assert d.reasons[0].kind == "error" and "on_error=log" in d.reasons[0].detail
    # other surfaces keep the default
    assert fw.check_tool_result("x").action is Action.DENY
    assert [x.action for x in sink.decisions] == [Action.LOG, Action.DENY]


def test_guard_error_with_rule_reasons_kept():
    fw, _ = make(RaisingGuard(), rules=[ask("pay")], config={"surfaces": {"tool_call": {"on_error": "log"}}})
    d = fw.check_tool_call("pay", {"amount": 1})
    assert d.action is Action.ASK
    assert [r.kind for r in d.reasons] == ["rule", "error"]


def test_wrong_number_of_verdicts_is_an_error():
    fw, sink = make(WrongCountGuard())
    d = fw.check_input(CLEAN)
    assert d.action is Action.DENY
    assert d.error is not None and "2 verdicts for 1 contents" in d.error
    assert sink.decisions == [d]


async def test_wrong_number_of_verdicts_is_an_error_async():
    fw, _ = make(WrongCountGuard())
    [a, b] = await fw.acheck_many([Content(Surface.USER_INPUT, "a"), Content(Surface.USER_INPUT, "b")])
    assert a.action is Action.DENY and b.action is Action.DENY
    assert "3 verdicts for 2 contents" in a.error


def test_huge_content_takes_on_error(small_guard, spy, monkeypatch):
    monkeypatch.setattr(firewall_module, "MAX_CHARS", 1000)
    fw, sink = make(small_guard, config={"surfaces": {"retrieved_document": {"on_error": "log"}}})
    d = fw.check_input("x " * 600)
    assert d.action is Action.DENY
    assert d.error is not None and "too large" in d.error
    assert d.reasons[0].kind == "error"
    assert d.verdict is None
    d = fw.check_document("y " * 600)
    assert d.action is Action.LOG and "too large" in d.error
    assert spy == []  # never sent to the model
    assert len(sink.decisions) == 2
    assert fw.check_input("x " * 400).action is Action.ALLOW
    assert len(spy) == 1


async def test_huge_content_async(small_guard, spy, monkeypatch):
    monkeypatch.setattr(firewall_module, "MAX_CHARS", 10)
    fw, _ = make(small_guard)
    d = await fw.acheck_tool_result("z" * 11)
    assert d.action is Action.DENY and "too large" in d.error
    assert spy == []


def test_only_the_unscored_content_takes_on_error(small_guard, monkeypatch):
    monkeypatch.setattr(firewall_module, "MAX_CHARS", 100)
    fw, _ = make(small_guard)
    big, ok = fw.check_many([Content(Surface.USER_INPUT, "w " * 80), Content(Surface.USER_INPUT, CLEAN)])
    assert big.action is Action.DENY and big.error
    assert ok.action is Action.ALLOW and ok.error is None


def test_deep_json_argument_gives_a_decision(small_guard):
    fw, sink = make(small_guard)
    d = fw.check_tool_call("shell", {"command": "[" * 1000 + "]" * 1000})
    assert d.error is None and d.verdict is not None and sink.decisions == [d]  # scored as the raw string


def test_lone_surrogates_are_scored_not_crashed(small_guard):
    fw, sink = make(small_guard)
    clean, bad = fw.check_many([Content(Surface.USER_INPUT, f"{CLEAN} \ud800 {uuid.uuid4().hex}"),
                                Content(Surface.USER_INPUT, f"{KABOOM} \udfff")])
    assert clean.action is Action.ALLOW and clean.error is None
    assert bad.action is Action.DENY and bad.error is None
    assert sink.decisions == [clean, bad]


def test_one_failing_request_does_not_fail_the_others_merged_with_it():
    from haloguard_agents.batching import MicroBatcher

    calls = []

    def score(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("cannot score 'bad'")
        return [x.upper() for x in items]

    batcher = MicroBatcher(score, max_wait=0.2)
    good, bad = batcher.submit(["a", "b"]), batcher.submit(["bad"])
    assert good.result(timeout=5) == ["A", "B"]
    with pytest.raises(ValueError, match="cannot score"):
        bad.result(timeout=5)
    assert calls[0] == ["a", "b", "bad"]  # merged first, then retried one request at a time


# -- shadow mode ------------------------------------------------------------------------------------------


def test_shadow_mode(small_guard):
    fw, sink = make(small_guard, config={"shadow": True}, rules=[deny("shell")])
    d = fw.check_input(KABOOM)
    assert d.action is Action.LOG and d.intended is Action.DENY
    assert d.shadow and d.allowed
    assert d.explain().startswith("deny: ")
    d = fw.check_tool_call("shell", {"command": "ls"})
    assert d.action is Action.LOG and d.intended is Action.DENY
    d = fw.check_input(CLEAN)
    assert d.action is Action.ALLOW and d.intended is Action.ALLOW
    assert all(x.shadow for x in sink.decisions)


def test_shadow_mode_errors():
    fw, _ = make(RaisingGuard(), config={"shadow": True})
    d = fw.check_input("x")
    assert d.action is Action.LOG and d.intended is Action.DENY and d.error == "RuntimeError: boom"


# -- audit -----------------------------------------------------------------------------------------------------


def test_every_decision_reaches_every_sink(small_guard, monkeypatch):
    monkeypatch.setattr(firewall_module, "MAX_CHARS", 500)
    a, b = MemorySink(), MemorySink()
    fw = Firewall(small_guard, rules=[deny("shell")], sinks=[a, b])
    returned = [fw.check_input(CLEAN), fw.check_input(KABOOM), fw.check_tool_call("shell", {}),
                fw.check_document("q " * 300)]
    returned += fw.check_many([Content(Surface.USER_INPUT, EDGY), Content(Surface.MODEL_OUTPUT, MEH)])
    broken = Firewall(RaisingGuard(), sinks=[a, b])
    returned.append(broken.check_input("x"))
    assert a.decisions == returned
    assert b.decisions == returned
    assert [d.action for d in returned] == [Action.ALLOW, Action.DENY, Action.DENY, Action.DENY, Action.DENY,
                                            Action.ALLOW, Action.DENY]
    assert returned[-1].error == "RuntimeError: boom"


def test_jsonl_sink_one_line_per_decision_and_appends(small_guard, tmp_path):
    path = tmp_path / "audit" / "decisions.jsonl"
    config = {"audit": {"jsonl": str(path), "log": False}}
    fw1 = Firewall(small_guard, config=FirewallConfig.load(config))
    assert [type(s) for s in fw1.sinks] == [JsonlSink]
    d1 = fw1.check_input(KABOOM)
    d2 = fw1.check_input(CLEAN)
    fw2 = Firewall(RaisingGuard(), config=FirewallConfig.load(config))
    d3 = fw2.check_tool_call("search", {"q": "x"})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [d1.id, d2.id, d3.id]
    assert [r["action"] for r in records] == ["deny", "allow", "deny"]
    assert records[0]["explanation"] == d1.explain()
    assert records[0]["reasons"][0]["policy"] == "weapons"
    assert records[0]["surface"] == "user_input"
    assert records[2]["error"] == "RuntimeError: boom"
    assert records[2]["tool"] == "search"
    assert "text" not in records[0]


def test_jsonl_sink_include_text(small_guard, tmp_path):
    path = tmp_path / "d.jsonl"
    fw = Firewall(small_guard, sinks=[JsonlSink(path, include_text=True)])
    fw.check_input("caf\u00e9 " + CLEAN)
    [record] = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert record["text"] == "caf\u00e9 " + CLEAN


def test_default_sinks(small_guard):
    from haloguard_agents import LoggingSink

    assert [type(s) for s in Firewall(small_guard).sinks] == [LoggingSink]
    assert Firewall(small_guard, config=FirewallConfig.load({"audit": {"log": False}})).sinks == []


def test_logging_sink_levels(small_guard, caplog):
    fw = Firewall(small_guard)
    with caplog.at_level(logging.INFO, logger="haloguard_agents.audit"):
        fw.check_input(CLEAN)
        fw.check_input(KABOOM)
    levels = [(r.levelno, r.name) for r in caplog.records if r.name == "haloguard_agents.audit"]
    assert levels == [(logging.INFO, "haloguard_agents.audit"), (logging.WARNING, "haloguard_agents.audit")]


def test_raising_sink_does_not_break_the_check(small_guard, caplog):
    class Broken:
        def emit(self, decision, content):
            raise OSError("disk full")

    after = MemorySink()
    fw = Firewall(small_guard, sinks=[Broken(), after])
    with caplog.at_level(logging.ERROR, logger="haloguard_agents"):
        d = fw.check_input(KABOOM)
    assert d.action is Action.DENY
    assert after.decisions == [d]
    assert any("failed to record" in r.getMessage() for r in caplog.records)


async def test_raising_sink_async(small_guard):
    class Broken:
        def emit(self, decision, content):
            raise RuntimeError("nope")

    d = await Firewall(small_guard, sinks=[Broken()]).acheck_input(CLEAN)
    assert d.action is Action.ALLOW


# -- configuration -------------------------------------------------------------------------------------------

README_CONFIG = r"""
shadow: false
default_tool_action: allow        # for tool calls that no rule matches
surfaces:                         # defaults: threshold 0.5, action deny, on_error deny
  tool_call: {threshold: 0.4, ask_threshold: 0.2, on_error: deny}
  retrieved_document: {threshold: 0.6, on_error: log}
policies:
  financial_advice: {action: log}
  prompt_injection: {threshold: 0.3, surfaces: {user_input: 0.8}}
  sexual_content: {enabled: false}
rules:
  - {tool: shell, action: deny, when: [{arg: command, matches: "\\brm\\s+-rf\\b"}]}
  - {tool: "http_*", action: deny, when: [{arg: url, host_not_in: [example.com, "*.example.org"]}]}
  - {tool: transfer_money, action: ask, when: [{arg: amount, above: 100}]}
audit: {jsonl: decisions.jsonl}
guard: {model: path/to/checkpoint}
"""


def _check_readme_config(c: FirewallConfig):
    assert c.shadow is False and c.default_tool_action is Action.ALLOW
    tc = c.surface(Surface.TOOL_CALL)
    assert (tc.threshold, tc.ask_threshold, tc.on_error, tc.action) == (0.4, 0.2, Action.DENY, Action.DENY)
    rd = c.surface(Surface.RETRIEVED_DOCUMENT)
    assert (rd.threshold, rd.on_error) == (0.6, Action.LOG)
    ui = c.surface(Surface.USER_INPUT)
    assert (ui.threshold, ui.ask_threshold, ui.on_error, ui.enabled) == (0.5, None, Action.DENY, True)
    assert c.policy("financial_advice").action is Action.LOG
    pi = c.policy("prompt_injection")
    assert pi.threshold_for(Surface.USER_INPUT, 0.5) == 0.8
    assert pi.threshold_for(Surface.TOOL_RESULT, 0.5) == 0.3
    assert c.policy("sexual_content").enabled is False
    assert c.policy("weapons").threshold_for(Surface.TOOL_CALL, 0.4) == 0.4
    assert [r.tool for r in c.rules] == ["shell", "http_*", "transfer_money"]
    assert str(c.audit.jsonl) == "decisions.jsonl"
    assert c.guard.model == "path/to/checkpoint" and c.guard.local_files_only is True


def test_config_from_yaml_file(tmp_path):
    path = tmp_path / "firewall.yaml"
    path.write_text(README_CONFIG, encoding="utf-8")
    _check_readme_config(FirewallConfig.load(path))
    _check_readme_config(FirewallConfig.load(str(path)))


def test_config_from_dict():
    _check_readme_config(FirewallConfig.load(yaml.safe_load(README_CONFIG)))


def test_empty_config_file_is_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    c = FirewallConfig.load(path)
    assert set(c.surfaces) == set(Surface)
    assert all(s.threshold == 0.5 and s.on_error is Action.DENY for s in c.surfaces.values())


def test_bad_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("surfaces: {tool_call: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        FirewallConfig.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read .*nope.yaml"):
        FirewallConfig.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize("data,field", [
    ({"surfacez": {}}, "surfacez"),
    ({"surfaces": {"tool_call": {"treshold": 0.3}}}, "surfaces.tool_call.treshold"),
    ({"surfaces": {"tool_cal": {"threshold": 0.3}}}, "surfaces.tool_cal"),
    ({"policies": {"weapons": {"level": 1}}}, "policies.weapons.level"),
    ({"audit": {"jsonl": "x", "format": "csv"}}, "audit.format"),
])
def test_unknown_field(tmp_path, data, field):
    with pytest.raises(ConfigError) as info:
        FirewallConfig.load(data)
    assert field in str(info.value)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        FirewallConfig.load(path)
    assert "c.yaml" in str(info.value) and field in str(info.value)


@pytest.mark.parametrize("data,field", [
    ({"surfaces": {"tool_call": {"threshold": 1.5}}}, "surfaces.tool_call.threshold"),
    ({"surfaces": {"tool_call": {"threshold": -0.1}}}, "surfaces.tool_call.threshold"),
    ({"surfaces": {"tool_call": {"threshold": "high"}}}, "surfaces.tool_call.threshold"),
    ({"surfaces": {"tool_call": {"threshold": 0.3, "ask_threshold": 0.4}}}, "surfaces.tool_call"),
    ({"policies": {"weapons": {"threshold": 2}}}, "policies.weapons.threshold"),
    ({"policies": {"weapons": {"surfaces": {"user_input": 7}}}}, "policies.weapons.surfaces.user_input"),
    ({"surfaces": {"tool_call": {"on_error": "explode"}}}, "surfaces.tool_call.on_error"),
    ({"default_tool_action": "maybe"}, "default_tool_action"),
])
def test_bad_values(data, field):
    with pytest.raises(ConfigError) as info:
        FirewallConfig.load(data)
    assert str(info.value).startswith(f"configuration: {field}")


def test_ask_threshold_message():
    with pytest.raises(ConfigError, match="ask_threshold must not exceed threshold"):
        FirewallConfig.load({"surfaces": {"tool_call": {"threshold": 0.3, "ask_threshold": 0.4}}})


def test_non_utf8_config_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("rules:\n  - {tool: caf\u00e9, action: deny}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml"):
        FirewallConfig.load(path)


def test_from_config_loads_guard(generative_dir, guard):
    fw = Firewall.from_config({"guard": {"model": str(generative_dir)}, "audit": {"log": False}})
    assert fw.guard is guard
    assert fw.check_input("please kaboom it").action is Action.DENY


# -- explanations ---------------------------------------------------------------------------------------


def test_explain_rule(small_guard):
    fw, _ = make(small_guard, rules=[deny("shell", when=[Arg("command").match(r"rm\s+-rf")], reason="destructive")])
    d = fw.check_tool_call("shell", {"command": "rm -rf ~"})
    assert d.reasons[0].rule == r"deny shell when command matches /rm\s+-rf/"
    assert d.explain() == r"deny: rule 'deny shell when command matches /rm\s+-rf/' (command=rm -rf ~): destructive"


def test_explain_policy(small_guard):
    fw, _ = make(small_guard)
    assert fw.check_output(EDGY).explain() == "deny: policy harassment 0.60 >= 0.50"


def test_explain_nothing_matched(small_guard):
    fw, _ = make(small_guard)
    assert fw.check_input(CLEAN).explain() == "allow: no rule or policy matched"


def test_explain_strictest_first(small_guard):
    fw, _ = make(small_guard, rules=[ask("pay")])
    d = fw.check_tool_call("pay", {"memo": KABOOM})
    assert d.explain() == "deny: policy weapons 0.99 >= 0.50; rule 'ask pay'"


def test_top_policies(small_guard):
    fw, _ = make(small_guard)
    d = fw.check_input(KABOOM)
    top = d.top_policies
    assert len(top) == 3 and top[0][0] == "weapons"
    assert fw.check_input(CLEAN).top_policies == []


def test_explanations_print_thresholds_as_set(guard):
    fw = Firewall(guard, config=FirewallConfig(surfaces={"user_input": {"threshold": 0.555}}))
    assert fw.check_input("please edgy it").explain() == "deny: policy harassment 0.60 >= 0.555"
