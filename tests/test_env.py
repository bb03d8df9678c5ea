"""`.env` loading and the W&B mode choice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from videomae.utils.env import configure_wandb_mode, load_env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "DATA_DIR", "PROJECT_ROOT"):
        monkeypatch.delenv(key, raising=False)


def test_env_file_is_loaded_but_real_variables_win(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".env").write_text(
        "WANDB_API_KEY=secret123\nWANDB_PROJECT=from_file\nDATA_DIR=\n# comment\n"
    )
    monkeypatch.setenv("WANDB_PROJECT", "from_shell")
    load_env(tmp_path)
    assert os.environ["PROJECT_ROOT"] == str(tmp_path.resolve())
    assert os.environ["WANDB_API_KEY"] == "secret123"
    assert os.environ["WANDB_PROJECT"] == "from_shell"
    assert "DATA_DIR" not in os.environ  # an empty value is not a value


def test_wandb_offline_without_key_online_with_key(monkeypatch) -> None:
    assert configure_wandb_mode() == "offline"
    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "k")
    assert configure_wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert configure_wandb_mode() == "disabled"
