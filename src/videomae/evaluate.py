"""Evaluation entry: validate a checkpoint on the validation list of its data config.

For a pretraining checkpoint this is the masked reconstruction loss (``val/loss``) with fixed
validation masks. ``eval.py`` at the repository root is the Hydra main that calls :func:`evaluate`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from videomae.train import build
from videomae.utils.rich_config import print_config_tree

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Load ``cfg.ckpt_path`` into the configured model and run the validation loop on it."""
    ckpt = Path(str(cfg.ckpt_path))
    if not ckpt.exists():  # a file, or a folder for sharded (FSDP) checkpoints
        raise FileNotFoundError(f"ckpt_path: no checkpoint at {ckpt}")
    if cfg.get("extras", {}).get("print_config"):
        print_config_tree(cfg, save_to=Path(cfg.paths.output_dir) / "config_tree.log")
    datamodule, model, trainer = build(cfg)
    results = trainer.validate(model=model, datamodule=datamodule, ckpt_path=str(ckpt))
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    if trainer.is_global_zero:
        log.info("metrics: %s", metrics)
        print(f"\nRun folder: {cfg.paths.output_dir}")
    return metrics
