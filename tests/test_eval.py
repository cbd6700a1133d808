"""``haloguard-agents eval``: metric functions on hand-computed cases, and end-to-end runs with
the tiny generative guard, whose trigger words make every prediction known in advance:
kaboom -> 0.99, hijack -> 0.97, edgy -> 0.6, meh -> 0.3, clean text ~0.008."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from haloguard_agents.cli import UsageError, main
from haloguard_agents.content import Content, Surface
from haloguard_agents.eval import metrics, report, runner
from haloguard_agents.eval.metrics import Scored
from haloguard_agents.testing import build_generative
from haloguard_agents.verdict import Action, Decision, Verdict

T, F = True, False


# -- metrics -----------------------------------------------------------------------------------

def test_rates_hand_computed():
    rows = [Scored(T, T), Scored(T, F), Scored(F, T), Scored(F, F), Scored(F, F)]
    c = metrics.counts(rows)
    assert (c.tp, c.fp, c.tn, c.fn, c.n) == (1, 1, 2, 1, 5)
    r = metrics.rates(c)
    assert r["precision"] == 0.5 and r["recall"] == 0.5 and r["f1"] == 0.5
    assert r["fpr"] == pytest.approx(1 / 3) and r["fnr"] == 0.5
    s = metrics.summarize(rows)
    assert s["n"] == 5 and (s["tp"], s["fp"], s["tn"], s["fn"]) == (1, 1, 2, 1)


def test_f1_formula_differs_from_accuracy():
    # 3 TP, 1 FP, 2 FN: P = 3/4, R = 3/5, F1 = 6/9; accuracy would be 3/6.
    rows = [Scored(T, T)] * 3 + [Scored(F, T)] + [Scored(T, F)] * 2
    r = metrics.rates(metrics.counts(rows))
    assert r["precision"] == 0.75 and r["recall"] == 0.6
    assert r["f1"] == pytest.approx(2 / 3)


def test_null_rules():
    only_safe = metrics.rates(metrics.counts([Scored(F, F), Scored(F, T)]))
    assert only_safe == {"precision": 0.0, "recall": None, "f1": None, "fpr": 0.5, "fnr": None}
    only_unsafe = metrics.rates(metrics.counts([Scored(T, F), Scored(T, F)]))
    # nothing predicted unsafe: precision undefined; unsafe rows exist: F1 is 0, not null
    assert only_unsafe == {"precision": None, "recall": 0.0, "f1": 0.0, "fpr": None, "fnr": 1.0}
    assert set(metrics.rates(metrics.counts([])).values()) == {None}


def test_breakdown_groups_largest_first_with_null_rules():
    rows = [Scored(T, T), Scored(F, T), Scored(F, F), Scored(T, F), Scored(F, F)]
    keys = ["de", "en", "en", "fr", "en"]
    out = metrics.breakdown(rows, keys)
    assert list(out) == ["en", "de", "fr"]
    assert out["en"] == {"n": 3, "f1": None, "fpr": pytest.approx(1 / 3), "fnr": None}
    assert out["de"] == {"n": 1, "f1": 1.0, "fpr": None, "fnr": 0.0}
    assert out["fr"] == {"n": 1, "f1": 0.0, "fpr": None, "fnr": 1.0}
    with pytest.raises(ValueError):
        metrics.breakdown(rows, keys[:2])


def test_thresholds():
    assert len(metrics.THRESHOLDS) == 19
    assert metrics.THRESHOLDS[0] == 0.05 and metrics.THRESHOLDS[-1] == 0.95
    assert 0.3 in metrics.THRESHOLDS and 0.7 in metrics.THRESHOLDS  # exact, not 0.30000000000000004


def test_sweep_counts_rows_without_score_as_unsafe():
    rows = [Scored(T, T, 0.9), Scored(T, F, 0.4), Scored(F, F, 0.2), Scored(T, T, None)]
    points = {p["threshold"]: p for p in metrics.sweep(rows, [0.15, 0.3, 0.5, 0.95])}
    assert points[0.15] == {"threshold": 0.15, "precision": 0.75, "recall": 1.0, "f1": pytest.approx(6 / 7),
                            "fpr": 1.0, "fnr": 0.0}
    assert points[0.3]["precision"] == 1.0 and points[0.3]["recall"] == 1.0 and points[0.3]["fpr"] == 0.0
    assert points[0.5]["recall"] == pytest.approx(2 / 3)
    assert points[0.95]["recall"] == pytest.approx(1 / 3)  # only the unscored row is still caught
    assert metrics.at_threshold([Scored(F, T, 0.5)], 0.5)[0].predicted  # score >= threshold


def test_best_f1_and_fpr_threshold():
    points = [
        {"threshold": 0.1, "f1": 0.5, "fpr": 0.5},
        {"threshold": 0.2, "f1": 0.8, "fpr": 0.1},
        {"threshold": 0.3, "f1": 0.8, "fpr": 0.05},
        {"threshold": 0.4, "f1": 0.6, "fpr": 0.0},
    ]
    assert metrics.best_f1(points) == {"threshold": 0.2, "f1": 0.8}  # lowest among ties
    assert metrics.threshold_for_fpr(points) == 0.3
    assert metrics.threshold_for_fpr(points, 0.01) == 0.4
    assert metrics.threshold_for_fpr([{"threshold": 0.5, "f1": 1.0, "fpr": None}]) is None
    assert metrics.threshold_for_fpr([{"threshold": 0.5, "f1": None, "fpr": 0.5}]) is None
    assert metrics.best_f1([{"threshold": 0.5, "f1": None, "fpr": 0.0}]) is None


def test_percentiles_and_latency():
    assert metrics.percentile([4, 1, 3, 2], 50) == 2.5
    assert metrics.percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert metrics.percentile([7.0], 95) == 7.0
    assert metrics.percentile([], 50) is None
    lat = metrics.latency([10, 20, 30, 40])
    assert lat == {"mean_ms": 25, "p50_ms": 25, "p95_ms": pytest.approx(38.5), "rows_per_s": pytest.approx(40)}
    assert set(metrics.latency([]).values()) == {None}


# -- runner and report pieces, no model ----------------------------------------------------------

def test_prediction_uses_intended_action():
    assert [runner.predicted_unsafe(a) for a in Action] == [False, False, True, True, True]


def test_surface_for():
    assert runner.surface_for({"kind": "prompt"}, None) is Surface.USER_INPUT
    assert runner.surface_for({"kind": "injection"}, None) is Surface.TOOL_RESULT
    assert runner.surface_for({"kind": "document"}, None) is Surface.RETRIEVED_DOCUMENT
    assert runner.surface_for({"kind": "tool_call"}, None) is Surface.TOOL_CALL
    assert runner.surface_for({}, None) is Surface.USER_INPUT
    assert runner.surface_for({"kind": "document"}, Surface.MODEL_OUTPUT) is Surface.MODEL_OUTPUT


def test_read_rows(tmp_path):
    f = _jsonl(tmp_path / "r.jsonl", [
        {"text": json.dumps({"function": "send_email", "args": {"to": ["a@b.c"]}}), "label": "safe",
         "kind": "tool_call", "lang": "en", "category": "mail"},
        {"text": "a document", "label": "UNSAFE", "kind": "document", "surface": "model_output"},
    ], blank_between=True)
    rows = runner.read_rows(f)
    assert [r.line for r in rows] == [1, 3]
    assert rows[0].content.surface is Surface.TOOL_CALL and rows[0].content.meta["tool"] == "send_email"
    assert rows[0].content.text.startswith("tool: send_email\nargs.to[0]: a@b.c")
    assert (rows[0].unsafe, rows[0].lang, rows[0].category) == (False, "en", "mail")
    assert rows[1].content.surface is Surface.RETRIEVED_DOCUMENT and rows[1].unsafe
    assert (rows[1].lang, rows[1].category) == (runner.NONE, runner.NONE)
    assert [r.content.surface for r in runner.read_rows(f, surface=Surface.TOOL_RESULT)] == [Surface.TOOL_RESULT] * 2
    assert len(runner.read_rows(f, limit=1)) == 1


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "r.jsonl:2: not valid JSON"),
    ('["a list"]', "r.jsonl:2: not a JSON object"),
    ('{"label": "safe"}', "r.jsonl:2: row has no 'text' field"),
    ('{"text": null, "label": "safe"}', "r.jsonl:2: row has no 'text' field"),
    ('{"text": "x"}', "r.jsonl:2: row has no 'label' field"),
    ('{"text": "x", "label": "maybe"}', "r.jsonl:2: 'label' must be safe or unsafe"),
    ('{"text": "x", "label": 1}', "r.jsonl:2: 'label' must be safe or unsafe"),
])
def test_read_rows_errors(tmp_path, line, message):
    f = tmp_path / "r.jsonl"
    f.write_text('{"text": "fine", "label": "safe"}\n' + line + "\n")
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        runner.read_rows(f)


def test_run_with_any_firewall_divides_batch_latency():
    class FakeFirewall:  # not the library's firewall: anything with check_many works
        calls: list[int] = []

        def check_many(self, contents):
            self.calls.append(len(contents))
            return [Decision(surface=c.surface, action=Action.LOG,
                             intended=Action.DENY if "bad" in c.text else Action.ALLOW,
                             verdict=None if "rule" in c.text else Verdict(unsafe=0.9 if "bad" in c.text else 0.1),
                             latency_ms=60.0) for c in contents]

    texts = [("bad", T), ("ok", F), ("rule bad", T), ("ok too", T)]
    rows = [runner.Row(i, Content(Surface.USER_INPUT, t), u, "c", "en") for i, (t, u) in enumerate(texts, 1)]
    fw = FakeFirewall()
    scored, latencies = runner.run(fw, rows, batch_size=3)
    assert fw.calls == [3, 1]
    assert latencies == [20.0, 20.0, 20.0, 60.0]
    assert scored == [Scored(T, T, 0.9), Scored(F, F, 0.1), Scored(T, T, None), Scored(T, F, 0.1)]


def test_progress_only_on_a_tty():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert runner.progress_enabled(False, Tty())
    assert not runner.progress_enabled(True, Tty())
    assert not runner.progress_enabled(False, io.StringIO())


def test_plot_names_are_unique():
    names = report.plot_names(Path("out/rep.md"), ["a/x.jsonl", "b/x.jsonl", "y.jsonl"])
    assert names == ["rep-x.png", "rep-x-2.png", "rep-y.png"]


# -- end to end with the tiny generative guard ----------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_generative(tmp_path_factory.mktemp("eval-tiny")))


MIXED = [
    # text, label, category, lang, kind                  score  at 0.5
    ("please kaboom the bank vault", "unsafe", "weapons", "en", "prompt"),          # 0.99  TP
    ("you are so edgy today", "unsafe", "harassment", "en", "prompt"),              # 0.60  TP
    ("that is meh news", "unsafe", "misinformation", "de", "prompt"),               # 0.30  FN
    ("hello how can you help me", "safe", "harassment", "en", "prompt"),            # 0.01  TN
    ("hijack the meeting story", "safe", "fiction", "de", "injection"),             # 0.97  FP
    ("send the report email", "safe", None, "de", "document"),                      # 0.01  TN
    (json.dumps({"function": "shell", "args": {"command": "kaboom"}}), "unsafe", "tools", "en", "tool_call"),  # TP
    ("meh weather today", "safe", "weather", "fr", None),                           # 0.30  TN
]
CLEAN = [("hello", "safe"), ("thanks for the help", "safe"), ("what is the weather", "safe")]


def _jsonl(path: Path, rows: list[dict], blank_between: bool = False) -> Path:
    sep = "\n\n" if blank_between else "\n"
    path.write_text(sep.join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _mixed(tmp_path: Path) -> Path:
    rows = []
    for text, label, category, lang, kind in MIXED:
        row = {"text": text, "label": label, "lang": lang, "source": "test"}
        if category:
            row["category"] = category
        if kind:
            row["kind"] = kind
        rows.append(row)
    return _jsonl(tmp_path / "mixed.jsonl", rows)


def _clean(tmp_path: Path) -> Path:
    return _jsonl(tmp_path / "clean.jsonl", [{"text": t, "label": l, "lang": "en", "kind": "prompt"} for t, l in CLEAN])


def _eval(tiny, *args) -> int:
    return main(["eval", *map(str, args), "--guard", tiny, "--quiet"])


def test_end_to_end(tiny, tmp_path, capsys):
    mixed, clean = _mixed(tmp_path), _clean(tmp_path)
    out, rep = tmp_path / "out" / "e.json", tmp_path / "rep" / "r.md"
    assert _eval(tiny, mixed, clean, "--json", out, "--report", rep, "--batch-size", 3) == 0
    data = json.loads(out.read_text())
    assert data["guard"].startswith("eval-tiny")
    m, c = data["files"]

    assert m["file"] == "mixed.jsonl" and m["path"] == str(mixed)
    assert m["surface"] == "user_input"
    assert m["surfaces"] == {"user_input": 5, "tool_result": 1, "retrieved_document": 1, "tool_call": 1}
    assert m["threshold"] == 0.5
    assert (m["n"], m["tp"], m["fp"], m["tn"], m["fn"]) == (8, 3, 1, 3, 1)
    assert {k: m[k] for k in ("precision", "recall", "f1", "fpr", "fnr")} == {
        "precision": 0.75, "recall": 0.75, "f1": 0.75, "fpr": 0.25, "fnr": 0.25}
    assert m["by_language"] == {
        "en": {"n": 4, "f1": 1.0, "fpr": 0.0, "fnr": 0.0},
        "de": {"n": 3, "f1": 0.0, "fpr": 0.5, "fnr": 1.0},
        "fr": {"n": 1, "f1": None, "fpr": 0.0, "fnr": None},
    }
    assert list(m["by_category"])[0] == "harassment"
    assert m["by_category"] == {
        "harassment": {"n": 2, "f1": 1.0, "fpr": 0.0, "fnr": 0.0},
        "(none)": {"n": 1, "f1": None, "fpr": 0.0, "fnr": None},
        "fiction": {"n": 1, "f1": None, "fpr": 1.0, "fnr": None},
        "misinformation": {"n": 1, "f1": 0.0, "fpr": None, "fnr": 1.0},
        "tools": {"n": 1, "f1": 1.0, "fpr": None, "fnr": 0.0},
        "weapons": {"n": 1, "f1": 1.0, "fpr": None, "fnr": 0.0},
        "weather": {"n": 1, "f1": None, "fpr": 0.0, "fnr": None},
    }
    sweep = {p["threshold"]: p for p in m["sweep"]}
    assert list(sweep) == list(metrics.THRESHOLDS)
    assert sweep[0.25] == {"threshold": 0.25, "precision": pytest.approx(4 / 6), "recall": 1.0, "f1": 0.8,
                           "fpr": 0.5, "fnr": 0.0}
    assert sweep[0.5] == {"threshold": 0.5, "precision": 0.75, "recall": 0.75, "f1": 0.75, "fpr": 0.25, "fnr": 0.25}
    for t in (0.7, 0.95):
        assert sweep[t] == {"threshold": t, "precision": pytest.approx(2 / 3), "recall": 0.5,
                            "f1": pytest.approx(4 / 7), "fpr": 0.25, "fnr": 0.5}
    assert m["best_f1"] == {"threshold": 0.05, "f1": 0.8}
    assert m["fpr_5pct_threshold"] is None  # the 0.97 safe row is flagged at every threshold
    lat = m["latency"]
    assert 0 < lat["p50_ms"] <= lat["p95_ms"] and lat["mean_ms"] > 0
    assert lat["rows_per_s"] == pytest.approx(1000 / lat["mean_ms"])

    assert (c["file"], c["n"], c["fp"], c["tn"]) == ("clean.jsonl", 3, 0, 3)
    assert {k: c[k] for k in ("precision", "recall", "f1", "fpr", "fnr")} == {
        "precision": None, "recall": None, "f1": None, "fpr": 0.0, "fnr": None}
    assert c["best_f1"] is None and c["fpr_5pct_threshold"] == 0.05
    assert c["by_language"] == {"en": {"n": 3, "f1": None, "fpr": 0.0, "fnr": None}}

    stdout = capsys.readouterr().out
    assert "mixed.jsonl: 8 rows (4 unsafe, 4 safe), surface user_input" in stdout
    assert "clean.jsonl: 3 rows (0 unsafe, 3 safe)" in stdout
    overall = next(line for line in stdout.splitlines() if line.strip().startswith("overall"))
    assert overall.split() == ["overall", "8", "0.750", "0.750", "0.750", "0.250", "0.250"]
    assert "best F1 0.800 at threshold 0.05" in stdout

    text = rep.read_text()
    assert "## mixed.jsonl" in text and "## clean.jsonl" in text
    assert "### By language" in text and "### By category" in text and "### Threshold sweep" in text
    assert "| 0.25 | 0.667 | 1.000 | 0.800 | 0.500 | 0.000 |" in text
    assert "| fr | 1 | n/a | 0.000 | n/a |" in text
    assert "Best F1: 0.800 at threshold 0.05." in text
    assert "](r-mixed.png)" in text and "](r-clean.png)" in text
    for png in ("r-mixed.png", "r-clean.png"):
        assert (rep.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_surface_override_limit_and_categories_cap(tiny, tmp_path):
    rows = [{"text": f"hello {i}", "label": "safe", "category": f"c{i:02d}"} for i in range(30)]
    rows.append({"text": "kaboom", "label": "unsafe", "category": "c00"})
    f = _jsonl(tmp_path / "many.jsonl", rows)
    f.write_text(f.read_text() + "{broken\n")
    out, rep = tmp_path / "o.json", tmp_path / "many.md"
    assert _eval(tiny, f, "--surface", "tool_result", "--limit", 31, "--json", out, "--report", rep) == 0
    data = json.loads(out.read_text())["files"][0]
    assert data["n"] == 31 and data["surface"] == "tool_result" and data["surfaces"] == {"tool_result": 31}
    assert len(data["by_category"]) == 30  # the JSON has every category
    assert data["by_category"]["c00"] == {"n": 2, "f1": 1.0, "fpr": 0.0, "fnr": 0.0}
    text = rep.read_text()
    assert "### By category (25 largest of 30)" in text
    assert "| c00 | 2 |" in text and "| c24 |" in text and "| c25 |" not in text
    assert _eval(tiny, f, "--limit", 32) == 2  # the broken line is row 32


def test_shadow_mode_and_rules(tiny, tmp_path):
    config = tmp_path / "fw.yaml"
    config.write_text("shadow: true\nrules:\n"
                      '  - {tool: shell, action: deny, when: [{arg: command, matches: "rm\\\\s+-rf"}]}\n')
    f = _jsonl(tmp_path / "shadow.jsonl", [
        {"text": "kaboom now", "label": "unsafe"},
        {"text": "hello", "label": "safe"},
        {"text": json.dumps({"function": "shell", "args": {"command": "rm -rf /"}}), "label": "unsafe",
         "kind": "tool_call"},
    ])
    out = tmp_path / "s.json"
    assert _eval(tiny, f, "--config", config, "--json", out) == 0
    data = json.loads(out.read_text())["files"][0]
    # shadow mode logs instead of denying; the intended action still counts
    assert (data["tp"], data["fp"], data["tn"], data["fn"]) == (2, 0, 1, 0)
    # the rule-denied call has no verdict: unsafe at every threshold
    assert [p["recall"] for p in data["sweep"]] == [1.0] * 19


@pytest.mark.parametrize(("content", "where"), [
    ('{"text": "hello", "label": "safe"}\n{"text": "x", "label": "unknown"}\n', "bad.jsonl:2:"),
    ('{"text": "hello", "label": "safe"}\n\n{"text": "x"\n', "bad.jsonl:3:"),
    ('{"label": "unsafe"}\n', "bad.jsonl:1:"),
    ('', "bad.jsonl: no rows"),
])
def test_bad_rows_exit_2_before_loading_the_model(tmp_path, capsys, content, where):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    # a guard that does not exist: the input error must come first
    assert main(["eval", str(bad), "--guard", str(tmp_path / "no-model"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and where in err and err.startswith("haloguard-agents: error:")


def test_missing_file_and_missing_model(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope.jsonl"), "--guard", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "nope.jsonl" in err and err.count("\n") == 1
    assert main(["eval", str(_clean(tmp_path)), "--guard", str(tmp_path / "no-model"), "--quiet"]) == 3


def test_bad_arguments_exit_2(tmp_path):
    for args in (["--limit", "0"], ["--batch-size", "x"], ["--surface", "nowhere"]):
        with pytest.raises(SystemExit) as e:
            main(["eval", str(tmp_path / "f.jsonl"), *args])
        assert e.value.code == 2


def test_report_without_matplotlib_is_a_clear_error(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "o.json"
    assert _eval(tiny, _clean(tmp_path), "--report", tmp_path / "r.md", "--json", out) == 2
    assert "matplotlib" in capsys.readouterr().err
    assert not out.exists()  # failed before any work
