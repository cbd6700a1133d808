"""Deterministic tool rules: tool-name globs and argument predicates (fail closed)."""

from __future__ import annotations

import os

import pytest
import yaml

from haloguard_agents import Action, Arg, ArgPredicate, ConfigError, FirewallConfig, ToolRule, allow, ask, deny
from haloguard_agents.content import flatten
from haloguard_agents.permissions import evaluate


def hits(rules, tool, args, default=Action.ALLOW):
    return evaluate(rules, tool, args, default)


def fires(rule: ToolRule, tool: str, args) -> bool:
    return bool(hits([rule], tool, args))


def holds(pred: ArgPredicate, args) -> bool:
    return pred.holds(flatten(args)) is not None


# -- tool-name globs ------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern,tool,expected", [
    ("shell", "shell", True),
    ("shell", "shell2", False),
    ("shell", "my_shell", False),
    ("http_*", "http_get", True),
    ("http_*", "http_", True),
    ("http_*", "https_get", False),
    ("*_file", "read_file", True),
    ("*_file", "read_files", False),
    ("*", "anything", True),
    ("db.*.drop", "db.users.drop", True),
    ("db.*.drop", "db.users.select", False),
    ("Shell", "shell", False),
])
def test_tool_name_glob(pattern, tool, expected):
    assert fires(deny(pattern), tool, {}) is expected


def test_rule_without_predicates_hits_with_detail():
    [reason] = hits([deny("shell", reason="no shells here")], "shell", {"command": "ls"})
    assert reason.kind == "rule"
    assert reason.action is Action.DENY
    assert reason.rule == "deny shell"
    assert reason.detail == "rule 'deny shell': no shells here"


def test_rule_builders_set_actions():
    assert allow("x").action is Action.ALLOW
    assert deny("x").action is Action.DENY
    assert ask("x").action is Action.ASK
    assert deny().tool == "*"


def test_rule_name_overrides_label():
    rule = deny("shell", when=[Arg("command").match("rm")], name="no-rm")
    [reason] = hits([rule], "shell", {"command": "rm x"})
    assert reason.rule == "no-rm"
    assert reason.detail == "rule 'no-rm' (command=rm x)"


def test_rule_label_describes_predicates():
    rule = ask("transfer_money", when=[Arg("amount").greater_than(100)])
    assert rule.label == "ask transfer_money when amount above 100"


# -- regex ----------------------------------------------------------------------------------------


RM = Arg("command").match(r"\brm\s+-rf\b")


@pytest.mark.parametrize("command,expected", [
    ("rm -rf /", True),
    ("sudo rm   -rf ~/x", True),
    ("ls -la; rm -rf .", True),
    ("rm -r somedir", False),
    ("echo farm -rf", False),
    ("format c:", False),
])
def test_regex_predicate(command, expected):
    assert holds(RM, {"command": command}) is expected


def test_regex_on_non_string_value():
    assert holds(Arg("n").match(r"^4\d$"), {"n": 42})
    assert not holds(Arg("n").match(r"^4\d$"), {"n": 52})
    assert holds(Arg("flag").match("^true$"), {"flag": True})


def test_regex_only_on_named_argument():
    assert not holds(RM, {"comment": "rm -rf /"})
    assert not holds(RM, {})


def test_regex_holds_description_names_leaf():
    assert RM.holds(flatten({"command": "rm -rf /"})) == "command=rm -rf /"
    long_value = "rm -rf " + "x" * 200
    desc = RM.holds(flatten({"command": long_value}))
    assert desc is not None and len(desc) == len("command=") + 80 and desc.endswith("…")


# -- path confinement ------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "data"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "file.txt").write_text("x")
    return r


def outside(root, value) -> bool:
    return holds(Arg("path").outside_of(root), {"path": value})


def test_absolute_inside(root):
    assert not outside(root, str(root / "sub" / "file.txt"))
    assert not outside(root, str(root / "does-not-exist-yet.txt"))


def test_absolute_outside(root):
    assert outside(root, "/etc/passwd")
    assert outside(root, str(root.parent / "other.txt"))


def test_relative_paths_resolve_against_root(root):
    assert not outside(root, "sub/file.txt")
    assert not outside(root, "new.txt")
    assert not outside(root, "./sub/../new.txt")


def test_dotdot_escape(root):
    assert outside(root, "../secret.txt")
    assert outside(root, "sub/../../secret.txt")
    assert outside(root, str(root / ".." / "secret.txt"))
    assert outside(root, "sub/../../data/../../etc/passwd")


def test_dotdot_that_stays_inside(root):
    assert not outside(root, str(root / "sub" / ".." / "sub" / "file.txt"))


def test_sibling_with_common_prefix_is_outside(root):
    sibling = root.parent / (root.name + "base")
    sibling.mkdir()
    assert outside(root, str(sibling / "x.txt"))


def test_path_exactly_at_root_is_inside(root):
    assert not outside(root, str(root))
    assert not outside(root, str(root) + "/")
    assert not outside(root, ".")


def test_tilde_expands_to_home(root, monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert outside(root, "~/.ssh/id_rsa")
    assert outside(root, "~")
    # a root given with ~ is expanded too
    (home / "work").mkdir()
    assert not holds(Arg("path").outside_of("~/work"), {"path": "~/work/notes.txt"})
    assert holds(Arg("path").outside_of("~/work"), {"path": "~/.bashrc"})


def test_symlink_inside_root_pointing_outside_is_outside(root, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.pem").write_text("k")
    os.symlink(secret, root / "link")
    os.symlink(secret / "key.pem", root / "key-link.pem")
    assert outside(root, "link/key.pem")
    assert outside(root, str(root / "link" / "key.pem"))
    assert outside(root, "key-link.pem")
    assert outside(root, "link")


def test_symlink_inside_root_pointing_inside_is_inside(root):
    os.symlink(root / "sub", root / "alias")
    assert not outside(root, "alias/file.txt")


def test_root_through_a_symlink(root, tmp_path):
    link_root = tmp_path / "root-link"
    os.symlink(root, link_root)
    assert not holds(Arg("path").outside_of(link_root), {"path": str(root / "sub" / "file.txt")})
    assert not holds(Arg("path").outside_of(root), {"path": str(link_root / "sub" / "file.txt")})
    assert holds(Arg("path").outside_of(link_root), {"path": "/etc/hosts"})


def test_unreadable_paths_fail_closed(root):
    assert outside(root, "")
    assert outside(root, "   ")
    assert outside(root, "sub/\x00file")


def test_whitespace_around_path_is_stripped(root):
    assert not outside(root, "  sub/file.txt \n")


# -- host allowlist ------------------------------------------------------------------------------------

ALLOWED = ["example.com", "*.example.org"]


def host_denied(url: str) -> bool:
    return holds(Arg("url").hosts_not_in(ALLOWED), {"url": url})


@pytest.mark.parametrize("url", [
    "https://example.com",
    "https://example.com/path?q=1#frag",
    "http://example.com:8080/x",
    "https://api.example.org/v1",
    "https://a.b.example.org",
    "ftp://files.example.org/file",
    "example.com/path",                  # no scheme
    "example.com",
    "//example.com/x",
    "https://example.com./",             # trailing dot
    "HTTPS://EXAMPLE.COM/UPPER",         # uppercase
    "https://API.Example.ORG",
    "https://user:pw@example.com/",      # userinfo on an allowed host
])
def test_allowed_hosts(url):
    assert host_denied(url) is False


@pytest.mark.parametrize("url", [
    "https://evil.com",
    "https://example.com@evil.com",       # userinfo trick
    "https://example.com:443@evil.com/",
    "example.com@evil.com",
    "https://example.org",                # *.example.org does not cover the apex
    "https://evilexample.com",
    "https://example.com.evil.com",
    "https://evil.com/example.com",
    "https://evil.com?x=example.com",
    "https://evil.com#.example.org",
    "https://notexample.org",
    "not a url",                          # not a URL -> holds (fail closed)
    "",
    "https://",
    "https:///path-only",
])
def test_denied_hosts(url):
    assert host_denied(url) is True


def test_backslash_host_trick_is_denied():
    assert host_denied("https://evil.com\\.example.org/") is True


def test_host_allowlist_on_email_addresses():
    rule = deny("send_email", when=[Arg("to[*]").hosts_not_in(["example.com"])])
    assert not fires(rule, "send_email", {"to": ["a@example.com", "b@example.com"]})
    [reason] = hits([rule], "send_email", {"to": ["a@example.com", "b@evil.com"]})
    assert reason.detail.endswith("(to[1]=b@evil.com)")


# -- numeric bounds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value,expected", [
    (150, True), (100.01, True), (100, False), (99, False), (-5, False), (0, False),
    ("150", True), (" 150 ", True), ("1e3", True), ("100", False), ("50.5", False),
    ("abc", True), ("$150", True), ("", True), ("150 USD", True),   # not numbers: fail closed
    (float("nan"), True), ("NaN", True), ("nan", True),
    (float("inf"), True), (None, True), (True, True),
])
def test_above(value, expected):
    assert holds(Arg("amount").greater_than(100), {"amount": value}) is expected


@pytest.mark.parametrize("value,expected", [
    (-1, True), ("-0.5", True), (0, False), (5, False), ("5", False),
    ("abc", True), (float("nan"), True), ("-inf", True), (None, True),
])
def test_below(value, expected):
    assert holds(Arg("amount").less_than(0), {"amount": value}) is expected


def test_numeric_bound_in_json_string_argument():
    assert holds(Arg("order.amount").greater_than(100), {"order": '{"amount": 500}'})
    assert not holds(Arg("order.amount").greater_than(100), {"order": '{"amount": 50}'})


# -- AND of predicates -------------------------------------------------------------------------------


def test_all_predicates_must_hold():
    rule = ask("transfer_money", when=[Arg("amount").greater_than(100), Arg("to").match(r"^ext-")])
    assert fires(rule, "transfer_money", {"amount": 500, "to": "ext-123"})
    assert not fires(rule, "transfer_money", {"amount": 50, "to": "ext-123"})
    assert not fires(rule, "transfer_money", {"amount": 500, "to": "int-123"})
    assert not fires(rule, "transfer_money", {"to": "ext-123"})
    [reason] = hits([rule], "transfer_money", {"amount": 500, "to": "ext-123"})
    assert reason.action is Action.ASK
    assert reason.detail == ("rule 'ask transfer_money when amount above 100 and to matches /^ext-/' "
                             "(amount=500, to=ext-123)")


def test_every_matching_rule_is_reported():
    rules = [ask("transfer_money", when=[Arg("amount").greater_than(100)]),
             deny("transfer_money", when=[Arg("amount").greater_than(10_000)]),
             allow("transfer_*")]
    actions = [r.action for r in hits(rules, "transfer_money", {"amount": 50_000})]
    assert actions == [Action.ASK, Action.DENY, Action.ALLOW]
    assert max(actions) is Action.DENY


def test_default_applies_only_when_no_rule_matches():
    rules = [allow("read_file")]
    [reason] = hits(rules, "delete_file", {}, Action.DENY)
    assert reason.action is Action.DENY
    assert reason.rule == "default"
    assert "delete_file" in reason.detail
    [reason] = hits(rules, "read_file", {}, Action.DENY)
    assert reason.action is Action.ALLOW
    assert hits(rules, "delete_file", {}, Action.ALLOW) == []


# -- argument globs and nesting ------------------------------------------------------------------------


def test_arg_glob_list_items():
    pred = Arg("to[*]").match("evil")
    assert holds(pred, {"to": ["a@example.com", "x@evil.com"]})
    assert not holds(pred, {"to": ["a@example.com"]})
    assert not holds(pred, {"to": "x@evil.com"})  # a string is not a list item
    assert not holds(pred, {"cc": ["x@evil.com"]})


def test_arg_specific_index():
    pred = Arg("to[1]").match("evil")
    assert holds(pred, {"to": ["a", "evil"]})
    assert not holds(pred, {"to": ["evil", "a"]})


def test_arg_star_matches_everything():
    pred = Arg("*").match(r"rm -rf")
    assert holds(pred, {"a": {"b": ["x", {"c": "rm -rf /"}]}})
    assert holds(pred, "rm -rf /")  # scalar args are named "input"
    assert not holds(pred, {"a": "ls"})


def test_arg_brackets_are_literal():
    # "[" is not a character class: "to[0]" must not match "t0"
    assert not holds(Arg("to[0]").match("x"), {"t0": "x"})
    assert holds(Arg("to[0]").match("x"), {"to": ["x"]})


def test_arg_dot_is_literal():
    assert not holds(Arg("a.b").match("x"), {"aXb": "x"})


def test_nested_args():
    assert holds(Arg("options.force").match("^true$"), {"options": {"force": True}})
    assert holds(Arg("options.*").match("^true$"), {"options": {"deep": {"force": True}}})
    assert not holds(Arg("options.*").match("^true$"), {"other": {"force": True}})
    assert holds(Arg("payload.cmd").match("rm -rf"), {"payload": '{"cmd": "rm -rf /"}'})
    assert holds(Arg("files[*].path").outside_of("/srv/data"), {"files": [{"path": "/srv/data/a"},
                                                                          {"path": "/etc/passwd"}]})


def test_scalar_args_named_input():
    assert fires(deny("search", when=[Arg("input").match("secret")]), "search", "find the secret")


# -- predicates must have exactly one operator ----------------------------------------------------------


def test_builders_make_predicates():
    assert Arg("cmd").match("rm") == ArgPredicate(arg="cmd", matches="rm")
    assert Arg("p").outside_of("/srv") == ArgPredicate(arg="p", outside="/srv")
    assert Arg("u").hosts_not_in(["a.com"]) == ArgPredicate(arg="u", host_not_in=("a.com",))
    assert Arg("n").greater_than(3) == ArgPredicate(arg="n", above=3)
    assert Arg("n").less_than(3) == ArgPredicate(arg="n", below=3)


def test_predicate_needs_one_operator():
    with pytest.raises(ValueError, match="exactly one"):
        ArgPredicate(arg="x")
    with pytest.raises(ValueError, match="exactly one"):
        ArgPredicate(arg="x", matches="a", above=1)
    with pytest.raises(ValueError, match="invalid regular expression"):
        Arg("x").match("(")


# -- configuration -------------------------------------------------------------------------------------


RULES_YAML = r"""
default_tool_action: deny
rules:
  - {tool: shell, action: deny, when: [{arg: command, matches: "\\brm\\s+-rf\\b"}]}
  - {tool: "http_*", action: deny, when: [{arg: url, host_not_in: [example.com, "*.example.org"]}]}
  - {tool: transfer_money, action: ask, when: [{arg: amount, above: 100}, {arg: "to", matches: "^ext-"}]}
  - {tool: read_file, action: deny, when: [{arg: path, outside: /srv/data}], name: confine-reads, reason: sandbox}
  - {tool: refund, action: ask, when: [{arg: amount, below: 0}]}
  - {tool: "*", action: allow}
"""


def _check_rules(rules):
    assert [r.tool for r in rules] == ["shell", "http_*", "transfer_money", "read_file", "refund", "*"]
    assert rules[0].when[0].matches == r"\brm\s+-rf\b"
    assert rules[1].when[0].host_not_in == ("example.com", "*.example.org")
    assert rules[2].when[0].above == 100 and rules[2].when[1].matches == "^ext-"
    assert rules[3].name == "confine-reads" and rules[3].when[0].outside == "/srv/data"
    assert rules[4].when[0].below == 0
    assert [a.action for a in hits(rules, "shell", {"command": "rm -rf /"})] == [Action.DENY, Action.ALLOW]
    assert [a.action for a in hits(rules, "http_get", {"url": "https://example.com@evil.com"})] == [
        Action.DENY, Action.ALLOW]
    assert [a.action for a in hits(rules, "http_get", {"url": "https://api.example.org"})] == [Action.ALLOW]
    assert [a.action for a in hits(rules, "transfer_money", {"amount": 101, "to": "ext-9"})] == [
        Action.ASK, Action.ALLOW]
    assert hits(rules, "read_file", {"path": "/etc/shadow"})[0].detail == (
        "rule 'confine-reads' (path=/etc/shadow): sandbox")


def test_rules_from_yaml_file(tmp_path):
    path = tmp_path / "firewall.yaml"
    path.write_text(RULES_YAML)
    config = FirewallConfig.load(path)
    assert config.default_tool_action is Action.DENY
    _check_rules(config.rules)


def test_rules_round_trip_dict_and_yaml(tmp_path):
    config = FirewallConfig.load(yaml.safe_load(RULES_YAML))
    dumped = config.model_dump(mode="json")
    again = FirewallConfig.load(dumped)
    assert again == config
    _check_rules(again.rules)
    path = tmp_path / "dumped.yaml"
    path.write_text(yaml.safe_dump(dumped))
    from_file = FirewallConfig.load(path)
    assert from_file == config
    _check_rules(from_file.rules)


def test_python_rules_equal_config_rules():
    config = FirewallConfig.load({"rules": [
        {"tool": "shell", "action": "deny", "when": [{"arg": "command", "matches": r"\brm\s+-rf\b"}]}]})
    assert config.rules[0] == deny("shell", when=[RM])


@pytest.mark.parametrize("predicate,message", [
    ({"arg": "command"}, "exactly one"),
    ({"arg": "command", "matches": "rm", "above": 3}, "exactly one"),
    ({"arg": "command", "matches": "(unclosed"}, "invalid regular expression"),
    ({"arg": "command", "matches": "rm", "typo": 1}, "typo"),
    ({"matches": "rm"}, "arg"),
])
def test_invalid_predicate_in_config(predicate, message):
    data = {"rules": [{"tool": "shell", "action": "deny", "when": [predicate]}]}
    with pytest.raises(ConfigError) as info:
        FirewallConfig.load(data)
    assert "rules.0.when.0" in str(info.value)
    assert message in str(info.value)


def test_invalid_predicate_in_yaml_file_names_file(tmp_path):
    path = tmp_path / "bad-rules.yaml"
    path.write_text("rules:\n  - {tool: shell, action: deny, when: [{arg: command, matches: '[z-a]'}]}\n")
    with pytest.raises(ConfigError) as info:
        FirewallConfig.load(path)
    assert "bad-rules.yaml" in str(info.value)
    assert "rules.0.when.0" in str(info.value)


def test_invalid_rule_action_in_config():
    with pytest.raises(ConfigError, match="rules.0.action"):
        FirewallConfig.load({"rules": [{"tool": "shell", "action": "block"}]})
