"""The constitution: the shipped policies, their schema, minimums and validation on load."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
import yaml

from haloguard_agents import ConfigError, Constitution, Policy, load_constitution
from haloguard_agents.policies import (
    LLAMA_GUARD, MLCOMMONS, OPENAI_MODERATION, QWEN3GUARD, policies_dir,
)

SHIPPED = load_constitution()
POLICY_IDS = [p.id for p in SHIPPED]


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    first = name.split(" ")[0] if name else "?"
    return {"HIRAGANA": "JAPANESE", "KATAKANA": "JAPANESE", "KATAKANA-HIRAGANA": "JAPANESE",
            "IDEOGRAPHIC": "CJK"}.get(first, first)


def _scripts(text: str) -> set[str]:
    return {_script(ch) for ch in text if ch.isalpha()}


# -- the shipped constitution ------------------------------------------------------------------------


def test_shipped_constitution_has_46_policies():
    assert len(SHIPPED) == 46
    assert len(SHIPPED.ids) == 46
    assert len(list(policies_dir().glob("*.yaml"))) == 46


def test_shipped_ids_unique_and_ordered_by_file_name():
    assert len(set(POLICY_IDS)) == 46
    files = sorted(policies_dir().glob("*.yaml"))
    assert [f.stem.split("-", 1)[1] for f in files] == POLICY_IDS


def test_shipped_names_unique():
    names = [p.name for p in SHIPPED]
    assert len(set(names)) == len(names)


def test_groups():
    groups = {p.id: p.group for p in SHIPPED}
    assert set(groups.values()) == {"content", "agentic"}
    for pid in ("prompt_injection", "jailbreak", "system_prompt_extraction", "data_exfiltration",
                "credential_theft", "destructive_actions", "unauthorized_transactions",
                "privilege_escalation", "malicious_code", "surveillance"):
        assert groups[pid] == "agentic", pid
    for pid in ("violent_crime", "weapons", "self_harm", "hate_speech", "harassment", "fraud_scams", "privacy",
                "intellectual_property", "elections"):
        assert groups[pid] == "content", pid


def test_expected_policies_present():
    for pid in ("weapons", "chemical_weapons", "biological_weapons", "nuclear_radiological", "harassment",
                "misinformation", "prompt_injection", "data_exfiltration", "destructive_actions", "fraud_scams",
                "financial_advice", "sexual_content"):
        assert pid in SHIPPED


@pytest.mark.parametrize("pid", POLICY_IDS)
def test_policy_schema_and_minimums(pid):
    p = SHIPPED[pid]
    assert isinstance(p, Policy)
    assert len(p.name) >= 3
    assert len(p.definition) >= 20
    assert len(p.unsafe) >= 1 and all(len(u) >= 3 for u in p.unsafe)
    assert len(p.safe) >= 1 and all(len(s) >= 3 for s in p.safe)
    assert len(p.subcategories) >= 20
    sub_ids = [s.id for s in p.subcategories]
    assert len(set(sub_ids)) == len(sub_ids)
    assert len(p.examples) >= 10
    non_english = [e for e in p.examples if e.lang != "en"]
    assert len(non_english) * 3 >= len(p.examples)
    for e in p.examples:
        assert e.safe.strip() and e.unsafe.strip()
        assert e.safe != e.unsafe
        assert e.surface in {"user_input", "model_output", "tool_call", "tool_result", "retrieved_document"}


@pytest.mark.parametrize("pid", POLICY_IDS)
def test_maps_to_values_valid(pid):
    m = SHIPPED[pid].maps_to
    assert set(m.llama_guard) <= set(LLAMA_GUARD)
    assert set(m.qwen3guard) <= set(QWEN3GUARD)
    assert set(m.mlcommons) <= set(MLCOMMONS)
    assert set(m.openai_moderation) <= set(OPENAI_MODERATION)


@pytest.mark.parametrize("pid", POLICY_IDS)
def test_every_policy_maps_somewhere(pid):
    m = SHIPPED[pid].maps_to
    assert m.llama_guard or m.qwen3guard or m.mlcommons or m.openai_moderation


def test_languages_overall():
    langs = {e.lang for p in SHIPPED for e in p.examples}
    assert "en" in langs
    assert len(langs) >= 10


def test_scripts_overall():
    scripts = set()
    for p in SHIPPED:
        for e in p.examples:
            scripts |= _scripts(e.safe) | _scripts(e.unsafe)
    assert {"LATIN", "CYRILLIC", "ARABIC", "CJK"} <= scripts
    assert len(scripts) >= 3


_EXPECTED_SCRIPT = {"zh": "CJK", "ja": "JAPANESE", "ko": "HANGUL", "ar": "ARABIC", "fa": "ARABIC", "ru": "CYRILLIC",
                    "uk": "CYRILLIC", "hi": "DEVANAGARI", "bn": "BENGALI", "el": "GREEK", "he": "HEBREW", "th": "THAI"}


@pytest.mark.parametrize("pid", POLICY_IDS)
def test_example_language_matches_script(pid):
    for e in SHIPPED[pid].examples:
        for text in (e.safe, e.unsafe):
            scripts = _scripts(text)
            if e.lang == "ja":
                assert scripts & {"JAPANESE", "CJK"}, (e.lang, text)
            elif e.lang in _EXPECTED_SCRIPT:
                assert _EXPECTED_SCRIPT[e.lang] in scripts, (e.lang, text)
            else:
                assert "LATIN" in scripts, (e.lang, text)


def test_examples_per_policy_span_several_languages():
    for p in SHIPPED:
        assert len({e.lang for e in p.examples}) >= 3, p.id


# -- Constitution API ----------------------------------------------------------------------------------


def test_getitem_and_contains():
    assert SHIPPED["weapons"].name == "Conventional weapons"
    assert "weapons" in SHIPPED
    assert "nope" not in SHIPPED
    with pytest.raises(KeyError, match="unknown policy 'nope'"):
        SHIPPED["nope"]


def test_select_keeps_constitution_order():
    sub = SHIPPED.select(["prompt_injection", "weapons", "harassment"])
    assert isinstance(sub, Constitution)
    assert sub.ids == ("weapons", "harassment", "prompt_injection")
    assert len(sub) == 3


def test_select_none_is_everything():
    assert SHIPPED.select(None) is SHIPPED


def test_select_unknown_raises():
    with pytest.raises(KeyError, match="weapon"):
        SHIPPED.select(["weapon"])


def test_from_taxonomy_llama_guard_s9_covers_cbrn():
    ids = SHIPPED.from_taxonomy("llama_guard", "S9")
    assert {"chemical_weapons", "biological_weapons", "nuclear_radiological"} <= set(ids)
    assert "harassment" not in ids
    # constitution order
    assert ids == [p for p in POLICY_IDS if p in ids]


def test_from_taxonomy_other_labels():
    assert "self_harm" in SHIPPED.from_taxonomy("llama_guard", "S11")
    assert "elections" in SHIPPED.from_taxonomy("llama_guard", "S13")
    assert SHIPPED.from_taxonomy("llama_guard", "S99") == []


def test_duplicate_policy_ids_rejected():
    with pytest.raises(ConfigError, match="unique"):
        Constitution([SHIPPED["weapons"], SHIPPED["weapons"]])


def test_load_constitution_is_cached():
    assert load_constitution() is SHIPPED


# -- validation of policy files -------------------------------------------------------------------------


def _valid_policy(pid: str = "test_policy") -> dict:
    return {
        "id": pid,
        "name": "Test policy",
        "group": "content",
        "definition": "A policy used only by the test suite to check validation.",
        "unsafe": ["Doing the bad thing."],
        "safe": ["Talking about the bad thing."],
        "subcategories": [{"id": f"sub_{i}", "description": f"Subcategory number {i}"} for i in range(20)],
        "examples": [
            {"lang": "en" if i < 6 else "fr", "safe": f"safe example {i}", "unsafe": f"unsafe example {i}"}
            for i in range(10)
        ],
        "maps_to": {"llama_guard": ["S1"], "openai_moderation": ["violence"]},
    }


def _write(directory: Path, name: str, data) -> Path:
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_valid_minimal_policy_loads(tmp_path):
    _write(tmp_path, "01-test_policy.yaml", _valid_policy())
    _write(tmp_path, "02-other.yaml", _valid_policy("other"))
    c = load_constitution(tmp_path)
    assert c.ids == ("test_policy", "other")
    assert c["test_policy"].maps_to.llama_guard == ("S1",)


def test_empty_directory_rejected(tmp_path):
    with pytest.raises(ConfigError, match="no policy files"):
        load_constitution(tmp_path)


def _bad(tmp_path, data, name="07-bad_policy.yaml") -> ConfigError:
    _write(tmp_path, "01-good.yaml", _valid_policy("good"))
    _write(tmp_path, name, data)
    with pytest.raises(ConfigError) as info:
        load_constitution(tmp_path)
    assert name in str(info.value)
    return info.value


@pytest.mark.parametrize("field", ["id", "name", "group", "definition", "unsafe", "safe", "subcategories", "examples"])
def test_missing_field_rejected(tmp_path, field):
    data = _valid_policy()
    del data[field]
    err = _bad(tmp_path, data)
    assert f"{field} Field required" in str(err)


def test_too_few_subcategories_rejected(tmp_path):
    data = _valid_policy()
    data["subcategories"] = data["subcategories"][:19]
    err = _bad(tmp_path, data)
    assert "at least 20 subcategories" in str(err)
    assert "has 19" in str(err)


def test_too_few_examples_rejected(tmp_path):
    data = _valid_policy()
    data["examples"] = data["examples"][1:]  # 9 pairs
    assert "at least 10 example pairs" in str(_bad(tmp_path, data))


def test_too_few_non_english_examples_rejected(tmp_path):
    data = _valid_policy()
    for e in data["examples"][:8]:
        e["lang"] = "en"
    assert "third" in str(_bad(tmp_path, data))


def test_unknown_llama_guard_code_rejected(tmp_path):
    data = _valid_policy()
    data["maps_to"]["llama_guard"] = ["S15"]
    err = _bad(tmp_path, data)
    assert "S15" in str(err)
    assert "Llama Guard" in str(err)


@pytest.mark.parametrize("taxonomy,value", [("qwen3guard", "Violence"), ("mlcommons", "xyz"),
                                            ("openai_moderation", "violent")])
def test_unknown_other_taxonomy_rejected(tmp_path, taxonomy, value):
    data = _valid_policy()
    data["maps_to"][taxonomy] = [value]
    assert value in str(_bad(tmp_path, data))


def test_duplicate_subcategory_ids_rejected(tmp_path):
    data = _valid_policy()
    data["subcategories"][5]["id"] = "sub_0"
    assert "unique" in str(_bad(tmp_path, data))


def test_malformed_yaml_rejected(tmp_path):
    err = _bad(tmp_path, "id: broken\nname: [unclosed\n  - : :\n")
    assert "invalid policy file" in str(err)


def test_yaml_that_is_not_a_mapping_rejected(tmp_path):
    _bad(tmp_path, "- just\n- a list\n")


def test_empty_yaml_file_rejected(tmp_path):
    _bad(tmp_path, "")


def test_unknown_field_rejected(tmp_path):
    data = _valid_policy()
    data["severity"] = "high"
    assert "severity" in str(_bad(tmp_path, data))


def test_bad_id_pattern_rejected(tmp_path):
    data = _valid_policy()
    data["id"] = "Bad-Id"
    assert "id" in str(_bad(tmp_path, data))


def test_bad_group_rejected(tmp_path):
    data = _valid_policy()
    data["group"] = "misc"
    assert "group" in str(_bad(tmp_path, data))


def test_bad_example_language_code_rejected(tmp_path):
    data = _valid_policy()
    data["examples"][0]["lang"] = "English"
    assert "lang" in str(_bad(tmp_path, data))


def test_bad_example_surface_rejected(tmp_path):
    data = _valid_policy()
    data["examples"][0]["surface"] = "email"
    assert "surface" in str(_bad(tmp_path, data))


def test_duplicate_policy_ids_across_files_rejected(tmp_path):
    _write(tmp_path, "01-a.yaml", _valid_policy("same"))
    _write(tmp_path, "02-b.yaml", _valid_policy("same"))
    with pytest.raises(ConfigError, match="unique"):
        load_constitution(tmp_path)


def test_non_utf8_policy_file_rejected_with_config_error(tmp_path):
    _write(tmp_path, "01-good.yaml", _valid_policy("good"))
    (tmp_path / "02-latin1.yaml").write_bytes(yaml.safe_dump(_valid_policy("latin")).encode()
                                               .replace(b"Test policy", b"Test caf\xe9"))
    with pytest.raises(ConfigError, match="02-latin1.yaml"):
        load_constitution(tmp_path)
