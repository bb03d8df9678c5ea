"""The masked-autoencoder pretraining LightningModule.

It joins the pieces: a batch from the data module, a mask drawn on the batch's device by the
masking generator (or, with VideoMAE V2 dual masking, an encoder and a decoder mask), the
pretraining network's loss, AdamW with the official parameter groups, and a
per-step warmup + cosine learning-rate schedule scaled by the global batch size.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from videomae.errors import ConfigError
from videomae.models.masking import MaskPair
from videomae.models.vit import no_weight_decay_names
from videomae.modules.base import VideoMAEModule
from videomae.modules.schedules import (
    clean_param_name,
    param_groups_weight_decay,
)

log = logging.getLogger(__name__)

MaskGenerator = Any
"""A masking with ``pair(batch_size, grid, device, generator) -> MaskPair``, ``num_masked`` and
``num_decoded`` (:mod:`videomae.models.masking`: tube, random or dual)."""


class PretrainModule(VideoMAEModule):
    """VideoMAE pretraining: masked reconstruction of normalized tubelet pixels.

    Args:
        net: the pretraining network; ``loss, pred = net(video, mask, decoder_mask)`` and
            ``net.grid_size``.
        masking: the mask generator (``videomae.models.masking.TubeMasking``, ``RandomMasking``
            or ``DualMasking``); its :class:`~videomae.models.masking.MaskPair` goes to the
            network as ``net(video, pair.encoder, pair.decoder)``.
        batch_size: the per-device batch size (from the data config); with the number of devices,
            nodes and gradient-accumulation steps it gives the global batch that scales the lr.
        optim: ``base_lr``, ``warmup_lr``, ``min_lr``, ``warmup_epochs`` (or ``warmup_steps``),
            ``weight_decay``, ``betas``, ``eps``.
        compile: ``torch.compile`` the network in place at fit start (``true``, ``false``
            or ``auto``: on CUDA, see :func:`~videomae.modules.base.auto_compile`).
        val_mask_seed: seed of the validation masks, fixed so that val/loss is comparable
            between epochs and runs.
    """

    checkpoint_kind = "pretrain"
    default_betas = (0.9, 0.95)
    log_name = __name__

    def __init__(
        self,
        net: nn.Module,
        masking: MaskGenerator,
        batch_size: int,
        optim: Mapping[str, Any],
        compile: bool | Literal["auto"] = False,
        val_mask_seed: int = 0,
    ) -> None:
        super().__init__(net, batch_size, optim, compile)
        self.save_hyperparameters(ignore=["net", "masking"], logger=False)
        self._plain_optim_hparam()
        if self.optim_cfg.layer_decay != 1.0:
            raise ConfigError(
                f"model.optim.layer_decay={self.optim_cfg.layer_decay}: pretraining has no layer "
                "decay (a fine-tuning setting); remove the key"
            )
        self.masking = masking
        # the masks' counts per row, known from the generator: the network need not read them
        counts = getattr(masking, "pair_counts", None)
        self.mask_counts = counts(net.grid_size) if counts is not None else None
        self.val_mask_seed = val_mask_seed
        # read off the unwrapped network, before FSDP/compile wrapping changes names and shapes
        names = net.no_weight_decay() if hasattr(net, "no_weight_decay") else None
        self._no_decay = {clean_param_name(n) for n in names or no_weight_decay_names(net)}
        self._reported_decoded_tokens = False

    # ------------------------------------------------------------------ helpers

    def draw_mask(self, batch_size: int, device: torch.device, seed: int) -> MaskPair:
        """The masks of ``batch_size`` clips, drawn on ``device`` from a generator seeded with
        ``seed`` (see :meth:`train_mask_seed` and ``val_mask_seed``)."""
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        return self.masking.pair(batch_size, self.net.grid_size, device=device, generator=generator)

    def train_mask_seed(self, batch_idx: int) -> int:
        """The seed of a training step's masks: a function of the run's seed, the rank, the epoch
        and the batch index. DDP ranks draw different masks though they share the run's seed, and
        a run resumed mid-epoch draws exactly the masks the unbroken run would have."""
        key = (torch.initial_seed(), self.global_rank, self.current_epoch, batch_idx)
        return hash(key) & 0x7FFF_FFFF_FFFF_FFFF

    # ------------------------------------------------------------------ steps
    def forward(self, video: torch.Tensor, mask: MaskPair) -> tuple[torch.Tensor, torch.Tensor]:
        """``loss, pred`` of the network for normalized ``video`` (B, 3, T, H, W) and its masks
        (a :class:`~videomae.models.masking.MaskPair`, as :meth:`draw_mask` gives)."""
        return self.net(video, mask.encoder, mask.decoder, self.mask_counts)

    # configure_model, on_fit_start and on_save_checkpoint: see VideoMAEModule

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One masked-reconstruction step on a fresh random mask."""
        video = batch["video"]
        mask = self.draw_mask(video.shape[0], video.device, self.train_mask_seed(batch_idx))
        if not self._reported_decoded_tokens:
            self._reported_decoded_tokens = True
            self._report_dual_masking(mask)
        loss, _ = self(video, mask)
        # the step value is this rank's (no all-reduce every step); the epoch mean is reduced
        n = video.shape[0]
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        self.log(
            "train/loss_epoch", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=n
        )
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Reconstruction loss on validation clips with masks fixed by ``val_mask_seed``."""
        video = batch["video"]
        mask = self.draw_mask(video.shape[0], video.device, seed=self.val_mask_seed + batch_idx)
        loss, _ = self(video, mask)
        n = video.shape[0]
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)
        return loss

    def _report_dual_masking(self, mask: MaskPair) -> None:
        """Log, with dual masking, how many tokens the decoder reconstructs and how many of
        them the loss covers."""
        if bool((mask.decoder == ~mask.encoder).all()):
            return  # VideoMAE V1: the decoder reconstructs the masked tokens
        log.info(
            "dual masking: the decoder reconstructs %d of %d tokens per clip, "
            "%.1f of them masked for the encoder on average (the loss covers those)",
            int((~mask.decoder[0]).sum()),
            mask.decoder.shape[1],
            float((mask.encoder & ~mask.decoder).sum(dim=1).float().mean()),
        )

    # ------------------------------------------------------------------ optimization
    def param_groups(self) -> list[dict[str, Any]]:
        """Weight decay on all but norms, biases and the mask token, one lr."""
        return param_groups_weight_decay(self.net, self.optim_cfg.weight_decay, self._no_decay)
