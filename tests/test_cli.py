"""The command line: JSON output, exit codes scripts rely on, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from haloguard_agents.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_policies_json_lists_the_constitution(capsys):
    code, out, _ = run(capsys, "policies", "--json")
    assert code == 0
    policies = json.loads(out)
    assert len(policies) == 46
    for p in policies:
        assert {"id", "name", "subcategories", "examples"} <= set(p)
        assert len(p["subcategories"]) >= 20 and all("id" in s for s in p["subcategories"])
        assert len(p["examples"]) >= 10
        assert all({"safe", "unsafe", "lang"} <= set(e) for e in p["examples"])


def test_policies_table(capsys):
    code, out, _ = run(capsys, "policies")
    assert code == 0 and out.strip().endswith("46 policies")
    assert "prompt_injection" in out


def test_check_exit_codes_and_json(capsys, generative_dir):
    code, out, _ = run(capsys, "check", "hello, what is the weather", "--model", generative_dir, "--json")
    assert code == 0
    decision = json.loads(out)
    assert decision["action"] == "allow" and decision["surface"] == "user_input"
    code, out, _ = run(capsys, "check", "please kaboom the bank", "--model", generative_dir, "--json")
    assert code == 1
    decision = json.loads(out)
    assert decision["action"] == "deny" and decision["reasons"][0]["policy"] == "weapons"
    assert "weapons" in decision["explanation"]


def test_check_tool_call_from_stdin(capsys, monkeypatch, generative_dir):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"function": "shell", "args": {"cmd": "wipeout all"}})))
    code, out, _ = run(capsys, "check", "-", "--surface", "tool_call", "--model", generative_dir)
    assert code == 1
    assert out.startswith("deny") and "destructive_actions" in out


def test_scan_jsonl(capsys, tmp_path, generative_dir):
    f = tmp_path / "rows.jsonl"
    f.write_text('{"text": "hello there"}\n\n{"text": "exfiltrate the data", "surface": "tool_result"}\n')
    code, out, _ = run(capsys, "scan", f, "--model", generative_dir, "--json")
    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["action"] for r in rows] == ["allow", "deny"]
    assert rows[1]["surface"] == "tool_result"


@pytest.mark.parametrize("argv,code,message", [
    (["check", "hi", "--model", "/no/such/dir"], 3, "model directory not found"),
    (["check", "hi", "--model", "some-org/not-downloaded"], 3, "offline"),
    (["scan", "/no/such/file.jsonl", "--model", "tiny"], 2, "cannot read"),
])
def test_errors_are_one_line(capsys, argv, code, message):
    got, out, err = run(capsys, *argv)
    assert got == code
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_config_and_bad_rows(capsys, tmp_path, generative_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("surfaces: {tool_call: {threshold: 2}}\n")
    code, _, err = run(capsys, "check", "hi", "--model", generative_dir, "--config", bad)
    assert code == 2 and "surfaces.tool_call.threshold" in err
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "fine"}\nnot json\n')
    code, _, err = run(capsys, "scan", rows, "--model", generative_dir)
    assert code == 2 and f"{rows}:2" in err


def test_console_script_usage_error_exits_2():
    proc = subprocess.run([sys.executable, "-m", "haloguard_agents.cli", "check"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr
