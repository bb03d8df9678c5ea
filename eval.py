"""Evaluate a checkpoint: ``python eval.py ckpt_path=PATH [experiment=NAME] [key=value ...]``."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from videomae.utils.env import load_env

load_env(Path(__file__).resolve().parent)


@hydra.main(version_base="1.3", config_path="configs", config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    from videomae.evaluate import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
