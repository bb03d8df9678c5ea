"""Evaluate a checkpoint: ``python eval.py ckpt_path=PATH [experiment=NAME] [key=value ...]``.

The checkpoint says what it is: without ``experiment=``, the run uses the experiment (and the
model and data overrides) it was trained with. A fine-tuning checkpoint is tested on every view of
every test video, with ``predictions.csv``, ``per_class_accuracy.csv`` and ``confusion_matrix.png``
written into the run folder; a pretraining one reports its masked reconstruction ``val/loss``.
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from videomae.utils.env import load_env
from videomae.utils.preflight import preflight
from videomae.utils.runs import register_resolvers

ROOT = Path(__file__).resolve().parent
load_env(ROOT)
register_resolvers()


@hydra.main(version_base="1.3", config_path="configs", config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    from videomae.evaluate import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    # the checkpoint's kind and experiment are read before Hydra starts the job
    sys.argv[1:] = preflight(ROOT / "configs", "eval.yaml", sys.argv[1:])
    main()
