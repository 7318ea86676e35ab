"""Fixtures shared by the whole-tick tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fake_llm_server import FakeLLMServer


@pytest.fixture(scope="session")
def small_brain(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A seeded small brain, made once per session; tests copy it (`copy_brain`) before changing it."""
    from brain.seed import seed_brain

    path = tmp_path_factory.mktemp("seed") / "brain"
    seed_brain(str(path), "small", seed=3, show_progress=False)
    return str(path)


@pytest.fixture
def fake_llm_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key env var the scripted server's tiers name (three_tier_config)."""
    monkeypatch.setenv("FAKE_LLM_KEY", "test")


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A scripted OpenAI-compatible server on loopback."""
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True, scope="session")
def _decision_key_outside_the_real_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The decision log's hmac key file is made in a per-run config directory, never in ~/.config."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
        patch.delenv("BRAINOPS_DECISION_KEY", raising=False)
        yield


@pytest.fixture(autouse=True)
def _default_home_outside_the_real_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test that sets no home gets the default one ($XDG_STATE_HOME/brainops) in a directory of its own,
    never ~/.local/state/brainops, and never one another test wrote."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
