"""Evaluation entry: a checkpoint on the data of its experiment.

- A fine-tuning checkpoint (the model is a LightningModule with a test loop, e.g.
  ``experiment=synthetic_finetune``): ``trainer.test`` on every view of every test video (the test
  list, else the validation list): ``test/acc1``, ``test/acc5``, ``test/mean_class_acc``, and
  ``predictions.csv``, ``per_class_accuracy.csv``, ``confusion_matrix.png`` in the run folder.
- A pretraining checkpoint: the masked reconstruction loss (``val/loss``) on the validation list
  with fixed validation masks.

``eval.py`` at the repository root is the Hydra main that calls :func:`evaluate`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, open_dict

from videomae.train import build, has_test_loop
from videomae.utils.rich_config import print_config_tree

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Load ``cfg.ckpt_path`` into the configured model and test (fine-tuning) or validate
    (pretraining) it; return the metrics (floats) and print the run folder."""
    ckpt = Path(str(cfg.ckpt_path))
    if not ckpt.exists():  # a file, or a folder for sharded (FSDP) checkpoints
        raise FileNotFoundError(f"ckpt_path: no checkpoint at {ckpt}")
    if cfg.get("model") is not None and "init_from" in cfg.model:
        with open_dict(cfg):  # the weights come from ckpt_path: the initial ones are not read
            cfg.model.init_from = None
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)  # made by Hydra in runs, not when composed
    if cfg.get("extras", {}).get("print_config"):
        print_config_tree(cfg, save_to=output_dir / "config_tree.log")
    datamodule, model, trainer = build(cfg)
    if has_test_loop(model):
        results = trainer.test(model=model, datamodule=datamodule, ckpt_path=str(ckpt))
    else:
        results = trainer.validate(model=model, datamodule=datamodule, ckpt_path=str(ckpt))
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    if trainer.is_global_zero:
        log.info("metrics: %s", metrics)
        print(f"\nRun folder: {output_dir}")
    return metrics
