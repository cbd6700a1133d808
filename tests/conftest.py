"""Shared fixtures: tiny real checkpoints (hand-set weights) built once per test session."""

from __future__ import annotations

import pytest

from haloguard_agents import Firewall, MemorySink, load_guard
from haloguard_agents.testing import DEFAULT_TRIGGERS, build_classifier, build_generative


@pytest.fixture(scope="session")
def generative_dir(tmp_path_factory):
    return build_generative(tmp_path_factory.mktemp("tiny-generative"), DEFAULT_TRIGGERS)


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory):
    return build_classifier(tmp_path_factory.mktemp("tiny-classifier"), DEFAULT_TRIGGERS)


@pytest.fixture(scope="session")
def binary_classifier_dir(tmp_path_factory):
    return build_classifier(tmp_path_factory.mktemp("tiny-binary"), DEFAULT_TRIGGERS, multi_label=False)


@pytest.fixture(scope="session")
def guard(generative_dir):
    """The tiny generative guard: 'kaboom' -> weapons 0.99, 'edgy' -> harassment 0.6, ..."""
    return load_guard(generative_dir)


@pytest.fixture
def sink():
    return MemorySink()


@pytest.fixture
def firewall(guard, sink):
    return Firewall(guard, sinks=[sink])
