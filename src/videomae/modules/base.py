"""What the pretraining and fine-tuning LightningModules share.

:class:`VideoMAEModule` keeps the network, the per-device batch size and the optimizer settings,
and gives both modules the global batch, the lr scaled by it, ``torch.compile`` of the network
before a strategy wraps it, the batch/lr report at fit start and the network's constructor
arguments in every checkpoint (``checkpoint["videomae"]``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import lightning as L
from torch import nn

from videomae.errors import ConfigError
from videomae.modules.config import OptimConfig
from videomae.modules.schedules import adamw_with_schedule, global_batch, scaled_lr


class VideoMAEModule(L.LightningModule):
    """Base of :class:`~videomae.modules.pretrain.PretrainModule` and
    :class:`~videomae.modules.finetune.FinetuneModule`.

    Args:
        net: the network; its ``config`` (constructor arguments) goes into the checkpoints.
        batch_size: samples per device and step; with the world size and gradient accumulation
            it gives the global batch that scales the lr.
        optim: ``model.optim`` (a mapping or an :class:`~videomae.modules.config.OptimConfig`),
            checked and kept as ``optim_cfg``.
        compile: ``torch.compile`` the network in place at fit start: ``True``, ``False``, or
            ``"auto"`` (on a CUDA device, except under a sharding strategy; see
            :func:`auto_compile`).

    Subclasses set :attr:`checkpoint_kind`, :attr:`default_betas`, :attr:`log_name` and
    :attr:`fit_report`, and give :meth:`param_groups`.
    """

    checkpoint_kind: ClassVar[str]
    """``checkpoint["videomae"]["kind"]``: what :func:`videomae.checkpoints.load` rebuilds."""

    log_name: ClassVar[str] = __name__
    """The logger of the fit-start report."""

    fit_report: ClassVar[str] = (
        "batch: %d per device, %d global; peak lr %.3g (base %.3g x %d / 256)"
    )
    """The fit-start log line, formatted with :meth:`fit_report_args`."""

    default_betas: ClassVar[tuple[float, float]]
    """AdamW betas when ``model.optim.betas`` is unset (the official recipe of each stage)."""

    report_to_loggers: ClassVar[bool] = True
    """Also send ``batch_size/per_device``, ``batch_size/global`` and ``lr/peak`` to every
    logger at fit start."""

    def __init__(
        self,
        net: nn.Module,
        batch_size: int,
        optim: Mapping[str, Any] | OptimConfig,
        compile: bool | Literal["auto"] = False,
    ) -> None:
        super().__init__()
        if compile not in (True, False, "auto"):
            raise ConfigError(f"model.compile={compile!r}: expected true, false or auto")
        self.net = net
        self.batch_size = int(batch_size)
        self.optim_cfg = OptimConfig.of(optim)
        self.compile_net = compile
        self._compiled = False
        self._compile_reported = False

    @property
    def global_batch_size(self) -> int:
        """Samples per optimizer step over all devices: batch x world size x accumulation."""
        return global_batch(self.batch_size, self._trainer)

    def _peak_lr(self) -> float:
        """``base_lr`` scaled by the global batch / 256."""
        return scaled_lr(self.optim_cfg.base_lr, self.global_batch_size)

    def _plain_optim_hparam(self) -> None:
        """Keep ``hparams["optim"]`` a plain dict (checkpoints load with ``weights_only``) when
        an :class:`~videomae.modules.config.OptimConfig` was passed; call after
        ``save_hyperparameters``."""
        if isinstance(self.hparams.get("optim"), OptimConfig):
            self.hparams["optim"] = dataclasses.asdict(self.optim_cfg)

    def configure_model(self) -> None:
        """Compile the network (in place, names unchanged) if asked: here, before a strategy such
        as FSDP wraps it, and once per module."""
        if self._compiled or not self.compile_net:
            return
        if self.compile_net == "auto":
            strategy = self.trainer.strategy
            use, why = auto_compile(strategy.root_device.type, strategy)
            if not self._compile_reported:
                logging.getLogger(self.log_name).info("model.compile=auto: %s", why)
                self._compile_reported = True
            if not use:
                return
        self.net.compile()
        self._compiled = True

    def fit_report_args(self) -> tuple[Any, ...]:
        """The values of :attr:`fit_report`: batch per device, global batch, peak lr, base lr,
        global batch."""
        return (
            self.batch_size,
            self.global_batch_size,
            self._peak_lr(),
            self.optim_cfg.base_lr,
            self.global_batch_size,
        )

    def on_fit_start(self) -> None:
        """Report the batch sizes and the scaled learning rate: to the log and, with
        :attr:`report_to_loggers`, to every logger (``batch_size/per_device``,
        ``batch_size/global``, ``lr/peak``, at step 0)."""
        logging.getLogger(self.log_name).info(self.fit_report, *self.fit_report_args())
        if self.report_to_loggers and self.trainer.is_global_zero:
            facts = {
                "batch_size/per_device": float(self.batch_size),
                "batch_size/global": float(self.global_batch_size),
                "lr/peak": self._peak_lr(),
            }
            for logger in self.loggers:
                logger.log_metrics(facts, step=self.global_step)

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups (each may carry its own ``lr``)."""
        raise NotImplementedError

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW over :meth:`param_groups` with the per-step warmup + cosine schedule."""
        return adamw_with_schedule(
            self.param_groups(),
            self.optim_cfg,
            peak_lr=self._peak_lr(),
            global_batch_size=self.global_batch_size,
            trainer=self.trainer,
            default_betas=self.default_betas,
        )

    def checkpoint_meta(self) -> dict[str, Any] | None:
        """``{"kind": checkpoint_kind, "config": net.config}``, or None for a network without
        ``config``."""
        config = getattr(self.net, "config", None)
        if config is None:
            return None
        return {"kind": self.checkpoint_kind, "config": dict(config)}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store :meth:`checkpoint_meta` under ``checkpoint["videomae"]`` so that
        :func:`videomae.checkpoints.load` rebuilds the network without Hydra."""
        meta = self.checkpoint_meta()
        if meta is not None:
            checkpoint["videomae"] = meta


def auto_compile(device_type: str, strategy: object) -> tuple[bool, str]:
    """Whether ``model.compile=auto`` compiles, and why, for a run on ``device_type`` (``cuda``,
    ``cpu``, ...) under the Lightning ``strategy``: on CUDA, unless the strategy shards the
    model (FSDP, model parallel, DeepSpeed: not yet measured there). On the CPU compiling costs
    minutes and gains little."""
    from lightning.pytorch.strategies import (
        DeepSpeedStrategy,
        FSDPStrategy,
        ModelParallelStrategy,
    )

    if device_type != "cuda":
        return False, f"not compiled on {device_type} (model.compile=true forces it)"
    if isinstance(strategy, (FSDPStrategy, ModelParallelStrategy, DeepSpeedStrategy)):
        return False, (
            f"not compiled under {type(strategy).__name__} (not yet measured there; "
            "model.compile=true forces it)"
        )
    return True, (
        "compiling the network with torch.compile: the first step takes longer (compiling), "
        "later steps are faster; model.compile=false to skip"
    )
