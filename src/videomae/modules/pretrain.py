"""The masked-autoencoder pretraining LightningModule.

It joins the pieces: a batch from the data module, a mask drawn on the batch's device by the
masking generator, the pretraining network's loss, AdamW with the official parameter groups, and a
per-step warmup + cosine learning-rate schedule scaled by the global batch size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import nn

from videomae.modules.schedules import param_groups_weight_decay, scaled_lr, warmup_cosine

log = logging.getLogger(__name__)

MaskGenerator = Callable[..., torch.Tensor]
"""``(batch_size, grid, device, generator=None) -> bool (B, N)``, True = masked."""


class PretrainModule(L.LightningModule):
    """VideoMAE pretraining: masked reconstruction of normalized tubelet pixels.

    Args:
        net: the pretraining network; ``loss, pred = net(video, mask)`` and ``net.grid_size``.
        masking: the mask generator (e.g. ``videomae.models.masking.TubeMasking``).
        batch_size: the per-device batch size (from the data config); with the number of devices,
            nodes and gradient-accumulation steps it gives the global batch that scales the lr.
        optim: ``base_lr``, ``warmup_lr``, ``min_lr``, ``warmup_epochs`` (or ``warmup_steps``),
            ``weight_decay``, ``betas``, ``eps``.
        compile: ``torch.compile`` the network in place at fit start.
        val_mask_seed: seed of the validation masks, fixed so that val/loss is comparable
            between epochs and runs.
    """

    def __init__(
        self,
        net: nn.Module,
        masking: MaskGenerator,
        batch_size: int,
        optim: Mapping[str, Any],
        compile: bool = False,
        val_mask_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "masking"], logger=False)
        self.net = net
        self.masking = masking
        self.batch_size = int(batch_size)
        self.optim_cfg = dict(optim)
        self.compile_net = compile
        self.val_mask_seed = val_mask_seed
        self._last_batch_start: float | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def global_batch_size(self) -> int:
        """Clips per optimizer step over all devices: batch x world size x accumulation."""
        trainer = self._trainer
        if trainer is None:
            return self.batch_size
        return self.batch_size * trainer.world_size * trainer.accumulate_grad_batches

    def draw_mask(
        self, batch_size: int, device: torch.device, seed: int | None = None
    ) -> torch.Tensor:
        """A mask for ``batch_size`` clips on ``device``; reproducible when ``seed`` is given."""
        generator = None
        if seed is not None:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
        return self.masking(batch_size, self.net.grid_size, device=device, generator=generator)

    # ------------------------------------------------------------------ steps
    def forward(self, video: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``loss, pred`` of the network for normalized ``video`` (B, 3, T, H, W) and ``mask``."""
        return self.net(video, mask)

    def on_fit_start(self) -> None:
        """Compile the network if asked; report the batch sizes and the scaled learning rate."""
        if self.compile_net:
            self.net.compile()
        log.info(
            "batch: %d per device, %d global; peak lr %.3g (base %.3g x %d / 256)",
            self.batch_size,
            self.global_batch_size,
            self._peak_lr(),
            self.optim_cfg["base_lr"],
            self.global_batch_size,
        )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Log clips/s, measured from one step start to the next (data wait included)."""
        now = time.perf_counter()
        if self._last_batch_start is not None and batch_idx > 0:
            elapsed = now - self._last_batch_start
            if elapsed > 0:
                self.log(
                    "train/clips_per_sec",
                    self.global_batch_size / elapsed,
                    on_step=True,
                    on_epoch=False,
                    prog_bar=True,
                    rank_zero_only=True,
                )
        self._last_batch_start = now

    def on_train_epoch_start(self) -> None:
        """Do not count the gap between epochs (validation, checkpointing) as step time."""
        self._last_batch_start = None

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One masked-reconstruction step on a fresh random mask."""
        video = batch["video"]
        mask = self.draw_mask(video.shape[0], video.device)
        loss, _ = self.net(video, mask)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Reconstruction loss on validation clips with masks fixed by ``val_mask_seed``."""
        video = batch["video"]
        mask = self.draw_mask(video.shape[0], video.device, seed=self.val_mask_seed + batch_idx)
        loss, _ = self.net(video, mask)
        self.log("val/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    # ------------------------------------------------------------------ optimization
    def _peak_lr(self) -> float:
        return scaled_lr(float(self.optim_cfg["base_lr"]), self.global_batch_size)

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (no decay on norms, biases, mask token) with per-step warmup + cosine."""
        cfg = self.optim_cfg
        skip = self.net.no_weight_decay() if hasattr(self.net, "no_weight_decay") else set()
        groups = param_groups_weight_decay(self.net, float(cfg["weight_decay"]), skip)
        peak = self._peak_lr()
        optimizer = torch.optim.AdamW(
            groups,
            lr=peak,
            betas=tuple(cfg.get("betas", (0.9, 0.95))),
            eps=float(cfg.get("eps", 1e-8)),
        )
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        warmup_steps = cfg.get("warmup_steps")
        if warmup_steps is None:
            max_epochs = self.trainer.max_epochs
            if max_epochs is None or max_epochs <= 0:
                raise ValueError(
                    "model.optim.warmup_epochs needs trainer.max_epochs; "
                    "set model.optim.warmup_steps when training by steps"
                )
            warmup_steps = round(float(cfg["warmup_epochs"]) * total_steps / max_epochs)
        schedule = partial(
            warmup_cosine,
            peak_lr=peak,
            warmup_steps=int(warmup_steps),
            total_steps=total_steps,
            warmup_lr=float(cfg.get("warmup_lr", 0.0)),
            min_lr=float(cfg.get("min_lr", 0.0)),
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step) / peak)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the network's constructor arguments so the weights can be rebuilt without Hydra."""
        config = getattr(self.net, "config", None)
        if config is not None:
            checkpoint["videomae"] = {"kind": "pretrain", "config": dict(config)}
