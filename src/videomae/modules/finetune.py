"""The supervised fine-tuning LightningModule: action recognition with a VideoMAE classifier.

It joins the classifier (:class:`~videomae.models.classifier.VideoMAEClassifier`), the batches of
the data module and the official fine-tuning recipe (MCG-NJU/VideoMAE ``run_class_finetuning.py``):

- AdamW with layer-wise lr decay (:mod:`videomae.modules.optim`), no weight decay on norms, biases
  and the position table, the per-step warmup + cosine schedule scaled by the global batch / 256;
- mixup / cutmix (timm ``Mixup`` applied to the frames of every clip alike) with soft-target cross
  entropy, or cross entropy with label smoothing when mixup is off;
- an optional EMA of the weights (timm ``ModelEmaV3``), used for validation and test when on and
  saved in the checkpoints under ``ema.module.*``;
- ``init_from``: the encoder of a pretraining (or fine-tuning) checkpoint in any format of
  :func:`videomae.checkpoints.load`; ``freeze_encoder``: linear probing.

Validation: top-1 / top-5 (torchmetrics) and the loss on one view per video. Test: every view of
every video (``video`` ``(B, V, C, T, H, W)``), softmax per view averaged per video, each video
counted once under DDP (gathered, deduplicated by its index); top-1, top-5, mean class accuracy,
and ``predictions.csv``, ``per_class_accuracy.csv`` and ``confusion_matrix.png`` in the run
folder (the metrics and files: :mod:`videomae.eval_outputs`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from videomae.checkpoints.transfer import init_classifier_from
from videomae.eval_outputs import (
    average_views,
    classification_metrics,
    first_occurrences,
    write_test_files,
)
from videomae.models.classifier import VideoMAEClassifier
from videomae.modules.base import VideoMAEModule
from videomae.modules.optim import param_groups_layer_decay
from videomae.modules.schedules import clean_param_name

log = logging.getLogger(__name__)

MIXUP_KEYS = ("mixup_alpha", "cutmix_alpha", "cutmix_minmax", "prob", "switch_prob", "mode")
"""Keys of ``model.mixup`` (timm ``Mixup`` arguments; label smoothing is ``label_smoothing``)."""


# ---------------------------------------------------------------------------- pure helpers
def mix_video(mixup: Any, video: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Mixup / cutmix of a batch of clips with timm's ``Mixup``: ``(mixed video, soft targets)``.

    timm's cutmix cuts ``x[:, :, y0:y1, x0:x1]``, i.e. the last two axes of an image batch; a
    video ``(B, C, T, H, W)`` is viewed as ``(B, C * T, H, W)`` so that the same box is cut from
    every frame (as the official video Mixup does). ``video`` is modified in place; the targets
    ``(B, num_classes)`` sum to one per clip.
    """
    if video.ndim != 5:
        raise ValueError(f"expected a video batch (B, C, T, H, W), got {tuple(video.shape)}")
    if video.shape[0] % 2:
        raise ValueError(
            f"mixup needs an even number of clips per batch, got {video.shape[0]} "
            "(set data.batch_size x data.num_sample even, or model.mixup=null)"
        )
    b, c, t, h, w = video.shape
    flat = video.contiguous().view(b, c * t, h, w)
    flat, soft = mixup(flat, target)
    return flat.view(b, c, t, h, w), soft


# ---------------------------------------------------------------------------- the module
class FinetuneModule(VideoMAEModule):
    """VideoMAE fine-tuning and multi-view evaluation for video classification.

    Args:
        net: the classifier; ``logits = net(video)``.
        batch_size: videos per device and step (``data.batch_size``; with repeated augmentation
            a batch holds ``batch_size x num_sample`` clips); with the world size and gradient
            accumulation it gives the global batch that scales the lr, as in the official code.
        optim: ``base_lr``, ``warmup_lr``, ``min_lr``, ``warmup_epochs`` (or ``warmup_steps``),
            ``weight_decay``, ``layer_decay``, ``betas``, ``eps``.
        mixup: timm ``Mixup`` arguments (:data:`MIXUP_KEYS`), or None for no mixup/cutmix.
        label_smoothing: label smoothing of the targets (inside mixup's soft targets when mixup
            is on, else of the cross entropy).
        ema: ``ModelEmaV3`` arguments (``decay``, ``use_warmup``, ...), or None for no EMA.
        init_from: a checkpoint whose encoder initializes ``net`` (see
            :func:`~videomae.checkpoints.transfer.init_classifier_from`); each process reads
            the file at construction.
        freeze_encoder: linear probing: train ``head`` (with ``head_norm``, a BatchNorm without
            affine parameters unless the network has one) only; the encoder runs in eval mode
            without gradients.
        compile: ``torch.compile`` the network in place at fit start (``true``, ``false``
            or ``auto``: on CUDA, see :func:`~videomae.modules.base.auto_compile`).
        output_dir: folder of the test files; default the trainer's ``default_root_dir`` (the
            run folder, ``paths.output_dir``).
        top_k: the k of top-k accuracy and of the predictions file.
    """

    checkpoint_kind = "classifier"
    default_betas = (0.9, 0.999)
    log_name = __name__
    fit_report = (
        "batch: %d videos per device, %d global; peak lr %.3g (base %.3g x %d / 256), "
        "layer decay %s"
    )
    report_to_loggers = False

    def __init__(
        self,
        net: VideoMAEClassifier,
        batch_size: int,
        optim: Mapping[str, Any],
        mixup: Mapping[str, Any] | None = None,
        label_smoothing: float = 0.1,
        ema: Mapping[str, Any] | None = None,
        init_from: str | None = None,
        freeze_encoder: bool = False,
        compile: bool | Literal["auto"] = False,
        output_dir: str | None = None,
        top_k: int = 5,
    ) -> None:
        super().__init__(net, batch_size, optim, compile)
        self.save_hyperparameters(ignore=["net"], logger=False)
        self._plain_optim_hparam()
        if not isinstance(net, VideoMAEClassifier) or net.num_classes < 1:
            raise ValueError("model.net must be a VideoMAEClassifier with num_classes >= 1")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"model.label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.output_dir = output_dir
        self.top_k = int(top_k)
        self.init_report: dict[str, list[str]] | None = None
        if init_from:
            self.init_report = init_classifier_from(net, init_from)

        self.freeze_encoder = bool(freeze_encoder)
        if self.freeze_encoder:
            if isinstance(net.head_norm, nn.Identity):
                net.set_head_norm("batchnorm")
            for name, param in net.named_parameters():
                param.requires_grad = name.startswith(("head.", "head_norm."))

        self.mixup = self._make_mixup(mixup)
        self.train_loss = (
            SoftTargetCrossEntropy()
            if self.mixup is not None
            else nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)
        )
        # read off the unwrapped network, before FSDP/compile wrapping changes names and shapes
        self._no_decay = {clean_param_name(n) for n in net.no_weight_decay()}

        self.ema: nn.Module | None = None
        if ema:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(net, **dict(ema))
        self._ema_step = -1

        k = net.num_classes
        self.val_acc1 = MulticlassAccuracy(num_classes=k, top_k=1, average="micro")
        self.val_acc5 = MulticlassAccuracy(num_classes=k, top_k=min(5, k), average="micro")
        self._test_parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.test_results: dict[str, Any] | None = None

    def _make_mixup(self, mixup: Mapping[str, Any] | None) -> Any:
        """timm ``Mixup`` from ``model.mixup``, or None when it is off (both alphas 0)."""
        if not mixup:
            return None
        unknown = set(mixup) - set(MIXUP_KEYS)
        if unknown:
            raise ValueError(f"model.mixup: unknown keys {sorted(unknown)}; known: {MIXUP_KEYS}")
        cfg = dict(mixup)
        active = cfg.get("mixup_alpha", 0) > 0 or cfg.get("cutmix_alpha", 0) > 0
        if not active and cfg.get("cutmix_minmax") is None:
            return None
        from timm.data import Mixup

        return Mixup(**cfg, label_smoothing=self.label_smoothing, num_classes=self.net.num_classes)

    # ------------------------------------------------------------------ helpers
    @property
    def eval_net(self) -> nn.Module:
        """The weights that validation and test use: the EMA when it is on, else ``net``."""
        return self.ema.module if self.ema is not None else self.net

    def logits(self, video: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """Class logits of clips ``(B, C, T, H, W)`` -> ``(B, K)``; without gradients through
        the encoder when it is frozen."""
        net = self.net if net is None else net
        if self.freeze_encoder:
            with torch.no_grad():
                features = net.forward_features(video)
            return net.forward_head(features)
        return net(video)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Logits of clips ``(B, C, T, H, W)``, or per-video probabilities averaged over the
        views of ``(B, V, C, T, H, W)``."""
        if video.ndim == 6:
            b, v = video.shape[:2]
            return average_views(self.logits(video.flatten(0, 1)).view(b, v, -1))
        return self.logits(video)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """With a frozen encoder, keep it in eval mode (no dropout, drop path) while ``head_norm``
        and ``head`` train; Lightning switches every module to train mode around validation."""
        if self.freeze_encoder:
            for name, child in self.net.named_children():
                child.train(name in ("head", "head_norm"))

    def fit_report_args(self) -> tuple[Any, ...]:
        """The base values of the fit-start line, then the layer decay."""
        return (*super().fit_report_args(), self.optim_cfg.layer_decay)

    def on_fit_start(self) -> None:
        """Warn of a new run's random encoder (evaluating or resuming a checkpoint is not one),
        then report the batch sizes and the scaled learning rate."""
        if self.init_report is None and self.trainer.ckpt_path is None:
            log.warning(
                "model.init_from is null: the encoder starts from random weights (set "
                "model.init_from=PATH to fine-tune a pretraining checkpoint)"
            )
        super().on_fit_start()

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One step: mixup/cutmix (if on), logits, soft-target or label-smoothed CE."""
        video, label = batch["video"], batch["label"]
        if self.mixup is not None:
            video, target = mix_video(self.mixup, video, label)
            loss = self.train_loss(self.logits(video), target)
        else:
            loss = self.train_loss(self.logits(video), label)
        # the step value is this rank's (no all-reduce every step); the epoch mean is reduced
        n = label.shape[0]
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        self.log(
            "train/loss_epoch", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=n
        )
        # the last group is the head's (lr scale 1): the schedule's value
        self.log("lr", self.optimizers().param_groups[-1]["lr"], on_step=True, on_epoch=False)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Update the EMA once per optimizer step."""
        if self.ema is not None and self.global_step != self._ema_step:
            self._ema_step = self.global_step
            self.ema.update(self.net, step=self.global_step)

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss and top-1/top-5 on one view per video (with the EMA weights when on)."""
        video, label = batch["video"], batch["label"]
        logits = self.logits(video, self.eval_net).float()
        loss = F.cross_entropy(logits, label)
        self.val_acc1(logits, label)
        self.val_acc5(logits, label)
        n = label.shape[0]
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)
        self.log("val/acc1", self.val_acc1, on_epoch=True, prog_bar=True, batch_size=n)
        self.log("val/acc5", self.val_acc5, on_epoch=True, batch_size=n)
        return loss

    # ------------------------------------------------------------------ test
    def on_test_epoch_start(self) -> None:
        """Forget the outputs of an earlier test run."""
        self._test_parts = []

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        """Every view of every video: ``video`` ``(B, V, C, T, H, W)`` (or one view
        ``(B, C, T, H, W)``) -> per-video probabilities, kept for the epoch end."""
        video = batch["video"]
        if video.ndim == 5:
            video = video[:, None]
        b, v = video.shape[:2]
        logits = self.logits(video.flatten(0, 1), self.eval_net).view(b, v, -1)
        self._test_parts.append((average_views(logits), batch["label"], batch["index"]))

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """All ranks' rows of ``tensor`` ``(N, ...)`` concatenated (``(W * N, ...)``)."""
        if self.trainer.world_size == 1:
            return tensor
        return self.all_gather(tensor).flatten(0, 1)

    def on_test_epoch_end(self) -> None:
        """Gather every rank's videos, keep each once, log the metrics, write the files."""
        k = self.net.num_classes
        if self._test_parts:
            probs = torch.cat([p for p, _, _ in self._test_parts])
            labels = torch.cat([lab for _, lab, _ in self._test_parts])
            index = torch.cat([i for _, _, i in self._test_parts])
        else:
            probs = torch.zeros(0, k, device=self.device)
            labels = torch.zeros(0, dtype=torch.long, device=self.device)
            index = torch.zeros(0, dtype=torch.long, device=self.device)
        probs, labels, index = self._gather(probs), self._gather(labels), self._gather(index)
        keep = first_occurrences(index)
        probs, labels, index = probs[keep].cpu(), labels[keep].cpu(), index[keep].cpu()
        labeled = labels >= 0
        metrics = classification_metrics(probs[labeled], labels[labeled], self.top_k)
        for name in ("acc1", "acc5", "mean_class_acc"):
            self.log(f"test/{name}", metrics[name], sync_dist=False, rank_zero_only=False)
        self.test_results = {"probs": probs, "labels": labels, "index": index, **metrics}
        if self.trainer.is_global_zero:
            self._write_test_files(probs, labels, index, metrics)

    def _write_test_files(
        self,
        probs: torch.Tensor,
        labels: torch.Tensor,
        index: torch.Tensor,
        metrics: Mapping[str, Any],
    ) -> None:
        """``predictions.csv``, ``per_class_accuracy.csv``, ``confusion_matrix.png`` in
        ``output_dir`` (default the run folder), with the data module's class names and video
        paths."""
        folder = Path(self.output_dir or self.trainer.default_root_dir)
        datamodule = getattr(self.trainer, "datamodule", None)
        class_names = getattr(datamodule, "class_names", None)
        records = getattr(getattr(datamodule, "test_set", None), "records", None)
        videos = [
            str(records[i].path) if records is not None and i < len(records) else str(i)
            for i in index.tolist()
        ]
        write_test_files(folder, probs, labels, videos, metrics, class_names, self.top_k)
        log.info(
            "test: %d videos, top-1 %.2f%%, top-%d %.2f%%, mean class %.2f%%; files in %s",
            len(index),
            100 * metrics["acc1"],
            min(self.top_k, probs.shape[1]),
            100 * metrics["acc5"],
            100 * metrics["mean_class_acc"],
            folder,
        )

    # ------------------------------------------------------------------ optimization
    def param_groups(self) -> list[dict[str, Any]]:
        """Layer-decay groups, each at ``peak lr x lr_scale``."""
        cfg = self.optim_cfg
        groups = param_groups_layer_decay(
            self.net,
            weight_decay=cfg.weight_decay,
            no_decay=self._no_decay,
            layer_decay=cfg.layer_decay,
            depth=len(self.net.blocks),
        )
        if not groups:
            raise ValueError("model: no trainable parameters (everything is frozen)")
        peak = self._peak_lr()
        for group in groups:
            group["lr"] = peak * group["lr_scale"]
        return groups

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_meta(self) -> dict[str, Any]:
        """The network's kind and constructor arguments, and the class names when the data
        module has them, for :func:`videomae.checkpoints.load` and ``videomae-predict``."""
        meta: dict[str, Any] = {"kind": self.checkpoint_kind, "config": dict(self.net.config)}
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        class_names = getattr(datamodule, "class_names", None)
        if class_names:
            meta["class_names"] = list(class_names)
        return meta
