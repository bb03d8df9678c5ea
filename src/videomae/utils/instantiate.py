"""Build callbacks and loggers from their config groups (a dict of named ``_target_`` entries)."""

from __future__ import annotations

import logging

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from videomae.utils.env import configure_wandb_mode

log = logging.getLogger(__name__)


def _entries(cfg: DictConfig | None, group: str) -> list[DictConfig]:
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise TypeError(
            f"{group} config must be a mapping of named entries, got {type(cfg).__name__}"
        )
    return [
        entry for entry in cfg.values() if isinstance(entry, DictConfig) and "_target_" in entry
    ]


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    """Instantiate every entry of the ``callbacks`` group that has a ``_target_``."""
    return [hydra.utils.instantiate(entry) for entry in _entries(cfg, "callbacks")]


def instantiate_loggers(
    cfg: DictConfig | None, run_name: str | None = None, group: str | None = None
) -> list[Logger]:
    """Instantiate every entry of the ``logger`` group.

    W&B goes offline without an API key (:func:`configure_wandb_mode`; the key itself is read
    by wandb from the environment and never passes through the config); its ``name`` and
    ``group``, when the config leaves them empty, become ``run_name`` and ``group`` (see
    :mod:`videomae.utils.runs`).
    """
    loggers: list[Logger] = []
    for entry in _entries(cfg, "logger"):
        kwargs = {}
        if "wandb" in str(entry["_target_"]).lower():
            mode = configure_wandb_mode()
            kwargs["offline"] = mode == "offline"
            if not entry.get("name") and run_name:
                kwargs["name"] = run_name
            if not entry.get("group") and group:
                kwargs["group"] = group
            log.info("W&B logging %s, run %s, group %s", mode, kwargs.get("name"), group)
        loggers.append(hydra.utils.instantiate(entry, **kwargs))
    return loggers
