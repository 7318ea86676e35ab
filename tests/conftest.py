"""Fixtures shared by the whole-tick tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def small_brain(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A seeded small brain, made once per test module; tests copy it (`copy_brain`) before changing it."""
    from workers.seed import seed_brain

    path = tmp_path_factory.mktemp("seed") / "brain"
    seed_brain(str(path), "small", seed=3, show_progress=False)
    return str(path)
