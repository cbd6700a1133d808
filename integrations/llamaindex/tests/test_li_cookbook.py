"""Every LlamaIndex recipe in cookbook/ runs offline and checks its own outcome."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

COOKBOOK = Path(__file__).resolve().parents[3] / "cookbook"
RECIPES = sorted(COOKBOOK.glob("llamaindex_*.py"))


def test_the_recipes_exist():
    assert {p.stem for p in RECIPES} >= {"llamaindex_poisoned_rag", "llamaindex_guarded_query_engine",
                                         "llamaindex_guarded_agent"}


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe(path, guard, capsys):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()  # load_guard("tiny") resolves to the session's guard (HALOGUARD_CACHE is set by the fixture)
    assert capsys.readouterr().out
