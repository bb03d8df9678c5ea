"""Environment set-up done before Hydra composes a config: project root and ``.env``."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values


def load_env(project_root: str | Path) -> None:
    """Set ``PROJECT_ROOT`` and load ``<project_root>/.env`` into the environment.

    Variables that are already set win over the file; empty values in the file are ignored, so an
    unfilled ``WANDB_API_KEY=`` line does not count as a key. Values are never printed.
    """
    root = Path(project_root).resolve()
    os.environ.setdefault("PROJECT_ROOT", str(root))
    env_file = root / ".env"
    if not env_file.is_file():
        return
    for key, value in dotenv_values(env_file).items():
        if value and key not in os.environ:
            os.environ[key] = value


def configure_wandb_mode() -> str:
    """Choose the W&B mode: ``WANDB_MODE`` if set, else online with an API key and offline without.

    Returns the mode and exports it as ``WANDB_MODE`` so that every process (DDP ranks too) agrees.
    """
    mode = os.environ.get("WANDB_MODE") or (
        "online" if os.environ.get("WANDB_API_KEY") else "offline"
    )
    os.environ["WANDB_MODE"] = mode
    return mode
