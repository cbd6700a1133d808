"""Every LangGraph recipe in cookbook/ runs offline and passes its own assertions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

COOKBOOK = Path(__file__).resolve().parents[3] / "cookbook"
RECIPES = sorted(COOKBOOK.glob("langgraph_*.py"))


def test_all_four_recipes_are_here():
    assert {p.stem for p in RECIPES} >= {"langgraph_react_agent", "langgraph_create_agent",
                                         "langgraph_human_approval", "langgraph_indirect_injection"}


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe(path, guard, capsys):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(guard)
    assert capsys.readouterr().out.strip()
