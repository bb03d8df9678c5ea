"""Evaluate a checkpoint: ``python eval.py ckpt_path=PATH [experiment=NAME] [key=value ...]``.

A fine-tuning experiment (``experiment=synthetic_finetune``, ``ssv2_finetune``, ...) tests every
view of every test video and writes ``predictions.csv``, ``per_class_accuracy.csv`` and
``confusion_matrix.png`` into the run folder; a pretraining one reports ``val/loss``.
"""

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
