"""Evaluation entry: a checkpoint on the data of its experiment.

``eval.py`` (the Hydra main at the repository root) first reads what the checkpoint is
(:mod:`videomae.utils.preflight`): without ``experiment=`` it composes the run with the
checkpoint's own experiment and model/data overrides; then :func:`evaluate` runs

- for a fine-tuning checkpoint (a LightningModule with a test loop): ``trainer.test`` on every view
  of every test video (the test list, else the validation list): ``test/acc1``, ``test/acc5``,
  ``test/mean_class_acc``, and ``predictions.csv``, ``per_class_accuracy.csv``,
  ``confusion_matrix.png`` in the run folder;
- for a pretraining checkpoint: the masked reconstruction loss (``val/loss``) on the validation
  list with fixed validation masks.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, open_dict

from videomae.checkpoints.files import is_checkpoint
from videomae.errors import CheckpointError
from videomae.train import build, has_test_loop, work_marker
from videomae.utils.preflight import RunGuard, check_checkpoint_fits
from videomae.utils.runs import format_metrics, in_multirun, job_log_name

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Load ``cfg.ckpt_path`` into the configured model and test (fine-tuning) or validate
    (pretraining) it; return the metrics (floats) and print the run folder. A single run runs
    under :class:`~videomae.utils.preflight.RunGuard` (a user error: the short block)."""
    if in_multirun():
        return _evaluate(cfg, None)
    with RunGuard(cfg.paths.output_dir, job_log=job_log_name()) as guard:
        return _evaluate(cfg, guard)


def _evaluate(cfg: DictConfig, guard: RunGuard | None) -> dict[str, float]:
    ckpt = Path(str(cfg.ckpt_path)).expanduser()
    if not is_checkpoint(ckpt):  # a file, or a folder for sharded (FSDP) checkpoints
        raise CheckpointError(f"ckpt_path: no checkpoint at {ckpt}")
    if cfg.get("model") is not None and "init_from" in cfg.model:
        with open_dict(cfg):  # the weights come from ckpt_path: the initial ones are not read
            cfg.model.init_from = None
    check_checkpoint_fits(ckpt, cfg, training=False)
    output_dir = Path(cfg.paths.output_dir)
    datamodule, model, trainer = build(cfg)
    trainer.callbacks.append(work_marker(guard))
    run = trainer.test if has_test_loop(model) else trainer.validate
    results = run(model=model, datamodule=datamodule, ckpt_path=str(ckpt), verbose=False)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    if trainer.is_global_zero:
        log.info("metrics: %s", format_metrics(metrics))
        print(f"\nRun folder: {output_dir}")
    return metrics
