"""Shared fixtures: composing the real configs from conf/, and an isolated cache and W&B directory per test."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import ntkeval.app  # noqa: F401  registers the config resolvers, as the command does
from ntkeval.build import CONF_DIR

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Every test gets its own cache dir and offline W&B; no test reads the user's cache."""
    monkeypatch.setenv("NTKEVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # a test that ran W&B in this process left its service's address in os.environ (wandb saves it there for child
    # processes); a command a later test starts must run its own service, which dies with it when the test kills it
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    # cells run in turn in one process share its loaded model (session_pool); each test starts with none loaded
    from ntkeval.backends import session_pool

    session_pool.release()


@pytest.fixture
def compose_config():
    """compose_config(*overrides) -> the real composed config (hydra node included)."""

    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)

    yield _compose
    GlobalHydra.instance().clear()
