"""Training entry: compose data, model, callbacks, loggers and trainer from a Hydra config, fit.

``train.py`` at the repository root is the Hydra main that calls :func:`hydra_main`.

Resume rule (:func:`videomae.callbacks.resume.resolve_ckpt_path`): ``ckpt_path=<checkpoint>``
(a file, or a sharded FSDP directory under ``trainer=fsdp``) starts from that checkpoint;
``ckpt_path=last`` from ``<run folder>/checkpoints/last.ckpt`` (with ``hydra.run.dir=<the old
run folder>``); with ``ckpt_path`` null and ``auto_resume: true`` (the default) a run folder that
already holds ``checkpoints/last.ckpt`` continues from it, which is how a requeued SLURM job
resumes.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import LambdaCallback
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from videomae.callbacks.preemption import PreemptionCheckpoint
from videomae.checkpoints.files import RUN_KEY, is_sharded_checkpoint, resolve_ckpt_path
from videomae.errors import CheckpointError
from videomae.utils.config import validate_config
from videomae.utils.instantiate import instantiate_callbacks, instantiate_loggers
from videomae.utils.logs import quiet_logs, quiet_resume
from videomae.utils.preflight import RunGuard, check_checkpoint_fits
from videomae.utils.rich_config import print_config_tree
from videomae.utils.runs import (
    failed_value,
    format_metrics,
    hydra_choices,
    in_multirun,
    job_log_name,
    run_name,
    sweep_group,
)

log = logging.getLogger(__name__)


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Check ``cfg``, print its tree (``extras.print_config``: also saved as
    ``config_tree.log`` in the run folder), and instantiate the data module, the
    LightningModule and the trainer.

    Nothing is decoded, generated or trained here; a bad value or a missing data set raises
    before any work.
    """
    quiet_logs()
    validate_config(cfg)
    if cfg.get("extras", {}).get("print_config"):
        output_dir = Path(cfg.paths.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        print_config_tree(cfg, save_to=output_dir / "config_tree.log")
    if cfg.get("extras", {}).get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")

    log.info("data module <%s>", cfg.data._target_)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    log.info("model <%s>", cfg.model._target_)
    model: L.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    loggers = instantiate_loggers(cfg.get("logger"), run_name=run_name(cfg), group=sweep_group(cfg))
    log.info("trainer <%s>", cfg.trainer._target_)
    extra: dict[str, Any] = {}
    if SLURMEnvironment.detect() and any(isinstance(c, PreemptionCheckpoint) for c in callbacks):
        # one handler of SLURM's signals: ours (Lightning's would requeue on its own)
        configured = hydra.utils.instantiate(cfg.trainer.get("plugins")) or []
        extra["plugins"] = [*configured, SLURMEnvironment(auto_requeue=False)]
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, **extra
    )
    return datamodule, model, trainer


@rank_zero_only
def _log_hyperparameters(cfg: DictConfig, model: L.LightningModule, trainer: L.Trainer) -> None:
    """Send the resolved config and the parameter counts to every logger."""
    if not trainer.loggers:
        return
    params: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    params.pop("hydra", None)
    params["model/params/total"] = sum(p.numel() for p in model.parameters())
    params["model/params/trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def has_test_loop(model: L.LightningModule) -> bool:
    """Whether ``model`` defines its own ``test_step`` (fine-tuning) rather than Lightning's
    placeholder (pretraining, which is evaluated by its validation loss)."""
    return type(model).test_step is not L.LightningModule.test_step


def work_marker(guard: RunGuard | None) -> LambdaCallback:
    """A callback that tells ``guard`` the run did work: a batch ran (not the sanity check) or a
    checkpoint was written."""

    def mark(trainer: L.Trainer, *_: Any) -> None:
        if guard is not None and not trainer.sanity_checking:
            guard.worked = True

    return LambdaCallback(
        on_train_batch_end=mark,
        on_validation_batch_end=mark,
        on_test_batch_end=mark,
        on_save_checkpoint=mark,
    )


def run_recorder() -> LambdaCallback:
    """A callback that writes the run's experiment and command-line overrides into every
    checkpoint (``videomae_run``), from which ``eval.py`` rebuilds the run's model and data."""
    experiment, overrides = hydra_choices()
    record = {"experiment": experiment, "overrides": overrides}

    def save(_trainer: L.Trainer, _module: L.LightningModule, checkpoint: dict) -> None:
        if experiment:
            checkpoint[RUN_KEY] = dict(record)

    return LambdaCallback(on_save_checkpoint=save)


def train(cfg: DictConfig, guard: RunGuard | None = None) -> dict[str, float]:
    """Run one training job described by ``cfg``; return the final metrics (floats).

    Prints the run folder at the end. ``cfg.ckpt_path`` / ``cfg.auto_resume`` choose the
    checkpoint to resume (see the module docstring); ``cfg.validate`` runs a last validation
    pass and ``cfg.test`` a test pass (on the best checkpoint, the last weights when there is
    none) whose metrics are included in the result. ``guard`` learns when the run starts work.
    """
    output_dir = Path(cfg.paths.output_dir)
    datamodule, model, trainer = build(cfg)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir, bool(cfg.get("auto_resume")))
    if ckpt_path:
        check_checkpoint_fits(ckpt_path, cfg, training=True)
        quiet_resume()
    if (
        ckpt_path
        and is_sharded_checkpoint(ckpt_path)
        and not isinstance(trainer.strategy, FSDPStrategy)
    ):
        raise CheckpointError(
            f"ckpt_path: {ckpt_path} is a sharded FSDP checkpoint (a directory)\n"
            "Resume it with trainer=fsdp, or make one file of it first with `python -m "
            "lightning.pytorch.utilities.consolidate_checkpoint <dir>` and pass that file"
        )
    trainer.callbacks.extend([work_marker(guard), run_recorder()])
    _log_hyperparameters(cfg, model, trainer)

    trained: list[bool] = []  # on_train_start runs only when there is training left to do
    trainer.callbacks.append(LambdaCallback(on_train_start=lambda *_: trained.append(True)))
    trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if ckpt_path and not trained and trainer.is_global_zero:
        log.info(
            "nothing to train: %s is at the end of this run (epoch %d, step %d; "
            "trainer.max_epochs=%s, trainer.max_steps=%s)",
            ckpt_path,
            trainer.current_epoch,
            trainer.global_step,
            trainer.max_epochs,
            trainer.max_steps,
        )

    if cfg.get("validate") and not trainer.fast_dev_run and trainer.limit_val_batches:
        results = trainer.validate(model=model, datamodule=datamodule, verbose=False)
        if results:
            metrics.update({k: float(v) for k, v in results[0].items()})

    if cfg.get("test") and not has_test_loop(model):
        log.warning("test: true, but %s has no test loop; skipping the test", type(model).__name__)
    elif cfg.get("test"):
        checkpoint = trainer.checkpoint_callback
        best = getattr(checkpoint, "best_model_path", "") if not trainer.fast_dev_run else ""
        if not best and checkpoint is None:
            log.info("test: on the last weights (no checkpoint callback)")
        elif not best:
            log.warning("test: no best checkpoint, testing the last weights")
        results = trainer.test(
            model=model, datamodule=datamodule, ckpt_path="best" if best else None, verbose=False
        )
        if results:
            metrics.update({k: float(v) for k, v in results[0].items()})

    if trainer.is_global_zero:
        log.info("metrics: %s", format_metrics(metrics))
        print(f"\nRun folder: {output_dir}")
    return metrics


def metric_for_sweep(metrics: dict[str, float], name: str | None) -> float | None:
    """The value of ``name`` in ``metrics`` for Hydra sweepers.

    Missing, it is an error naming the metric inside a sweep (the sweeper needs it), and one
    log line otherwise (a run without validation has no ``val/loss``): None is returned.
    """
    if not name:
        return None
    if name not in metrics:
        if in_multirun():
            raise KeyError(
                f"optimized_metric {name!r} was not logged; logged metrics: {sorted(metrics)}"
            )
        log.info("optimized_metric %s was not logged by this run (no validation); ignored", name)
        return None
    return metrics[name]


def hydra_main(cfg: DictConfig) -> float | None:
    """Body of the root ``train.py``: train, then return the metric that sweeps optimize.

    In a multirun (``-m``, Optuna) a job that raises is logged with its traceback and returns
    :func:`videomae.utils.runs.failed_value` (+inf for a minimized metric, -inf for a maximized
    one) instead of ending the sweep; a single run runs under
    :class:`~videomae.utils.preflight.RunGuard` (a user error: the short block, exit status 2; a
    failure before any work: no run folder left).
    """
    name = cfg.get("optimized_metric")
    if not in_multirun():
        with RunGuard(cfg.paths.output_dir, job_log=job_log_name()) as guard:
            return metric_for_sweep(train(cfg, guard), name)
    try:
        metrics = train(cfg)
        return metric_for_sweep(metrics, name)
    except Exception:
        value = failed_value(name)
        log.exception("this sweep job failed; it reports %s=%s and the sweep goes on", name, value)
        return value
