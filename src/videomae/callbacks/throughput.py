"""Training throughput: clips/s, tokens/s, MFU, peak memory and the time spent waiting for data.

The one place where speed is measured (``PretrainModule`` logs no timing). Per training step,
on every rank, the callback reads the wall clock at ``on_train_batch_start`` and
``on_train_batch_end``:

- step time = from one batch start to the next (data loading, forward, backward, optimizer,
  logging: everything);
- data wait = from one batch end to the next batch start (Lightning fetches the next batch and
  moves it to the device in between), as a fraction of the step time.

Logged every ``trainer.log_every_n_steps`` steps as the mean over the steps since the last log,
to every logger (``pl_module.log``, rank zero's numbers): ``perf/clips_per_sec`` and
``perf/tokens_per_sec`` are *global* (rank zero's per-rank rate x world size: ranks step in
lockstep under DDP/FSDP), ``perf/step_time_s``, ``perf/data_wait_frac``, ``perf/peak_mem_gb``
(CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's peak resident set size), and on
CUDA ``perf/mfu``: model FLOPs per second over the device's peak (:data:`PEAK_FLOPS`). FLOPs
are counted analytically (:func:`pretrain_train_flops`) for the VideoMAE pretraining network:
the matmuls and attention of forward and backward (3x the forward), on the tokens each part
really processes (the encoder sees only the visible tokens); a test checks the count, per
operation, against ``torch.utils.flop_counter``.
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from typing import Any

import lightning as L
import torch

log = logging.getLogger(__name__)

__all__ = [
    "PEAK_FLOPS",
    "ThroughputMonitor",
    "device_peak_flops",
    "peak_memory_bytes",
    "pretrain_flops_by_operation",
    "pretrain_train_flops",
    "vit_block_flops",
]

PEAK_FLOPS: tuple[tuple[tuple[str, ...], float, float], ...] = (
    # (all substrings of torch.cuda.get_device_name(), dense bf16 FLOP/s, dense tf32 FLOP/s)
    (("H200",), 989e12, 494e12),
    (("H100", "PCIE"), 756e12, 378e12),
    (("H100", "NVL"), 835e12, 418e12),
    (("H100",), 989e12, 494e12),  # SXM (HBM3)
    (("GH200",), 989e12, 494e12),
    (("B200",), 2250e12, 1100e12),
    (("A100",), 312e12, 156e12),
    (("A800",), 312e12, 156e12),
    (("L40S",), 362e12, 183e12),
    (("L4",), 121e12, 60e12),
    (("A10G",), 70e12, 35e12),
    (("A10",), 125e12, 62.5e12),
    (("RTX 4090",), 165e12, 82.6e12),
    (("RTX 3090",), 71e12, 35.6e12),
    (("V100",), 125e12, 15.7e12),  # no bf16: the fp16 tensor-core peak
    (("T4",), 65e12, 8.1e12),  # fp16 tensor-core peak
)
"""Dense (no sparsity) peak tensor-core throughput by device name, from the vendors' data
sheets. fp32 training runs its matmuls in TF32 here (``torch.set_float32_matmul_precision
("high")`` in ``videomae.train``), hence the TF32 column."""


def device_peak_flops(device_name: str, precision: str) -> float | None:
    """Peak FLOP/s of ``device_name`` at the Lightning ``precision`` (bf16/16 or 32), or None."""
    name = device_name.upper()
    half = "16" in str(precision)
    for parts, bf16, tf32 in PEAK_FLOPS:
        if all(part in name for part in parts):
            return bf16 if half else tf32
    return None


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory of this process: CUDA ``max_memory_allocated`` on a GPU, else peak RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


def _block_flops(tokens: int, dim: int, mlp_ratio: float) -> tuple[float, float]:
    """Forward FLOPs (2 per multiply-add) of one transformer block, as (linear layers,
    attention): qkv + projection (4 D^2 per token) and MLP (2 r D^2 per token); attention scores
    and weighted sum (2 L^2 D)."""
    hidden = int(dim * mlp_ratio)
    return 2.0 * tokens * (4 * dim * dim + 2 * dim * hidden), 2.0 * 2 * tokens * tokens * dim


def vit_block_flops(tokens: int, dim: int, mlp_ratio: float) -> float:
    """Forward FLOPs (2 per multiply-add) of one transformer block on ``tokens`` tokens:
    qkv + projection (4 D^2 per token), MLP (2 r D^2 per token), attention scores and weighted
    sum (2 L^2 D)."""
    return sum(_block_flops(tokens, dim, mlp_ratio))


def pretrain_flops_by_operation(
    net: Any, num_masked: int, num_decoded: int | None = None
) -> dict[str, float]:
    """Training FLOPs of one clip through a VideoMAE pretraining network, per kind of operation:
    ``embed`` (the tubelet embedding), ``linear`` (every linear layer's matrix products) and
    ``attention`` (scores and weighted sum). Arguments as :func:`pretrain_train_flops`."""
    cfg = net.config
    n = int(net.num_patches)
    visible = n - num_masked
    decoded = num_masked if num_decoded is None else num_decoded
    dim, dec_dim, ratio = cfg["embed_dim"], cfg["decoder_embed_dim"], cfg["mlp_ratio"]
    patch_pixels = cfg["tubelet_size"] * cfg["patch_size"] ** 2 * cfg["in_chans"]
    enc_linear, enc_attention = _block_flops(visible, dim, ratio)
    dec_linear, dec_attention = _block_flops(visible + decoded, dec_dim, ratio)
    linear = cfg["depth"] * enc_linear + cfg["decoder_depth"] * dec_linear
    linear += 2.0 * visible * dim * dec_dim  # encoder_to_decoder
    linear += 2.0 * decoded * dec_dim * patch_pixels  # head on the decoded tokens
    attention = cfg["depth"] * enc_attention + cfg["decoder_depth"] * dec_attention
    # backward = 2 x forward, except for the tubelet embedding: it runs on all N tokens before
    # the visible ones are taken, and its input needs no gradient (weight gradient only)
    return {
        "embed": 2.0 * 2.0 * n * patch_pixels * dim,
        "linear": 3.0 * linear,
        "attention": 3.0 * attention,
    }


def pretrain_train_flops(net: Any, num_masked: int, num_decoded: int | None = None) -> float:
    """Training FLOPs (forward + backward = 3 x forward; 2 x for the tubelet embedding, whose
    input needs no gradient) of one clip through a VideoMAE pretraining network
    (:class:`videomae.models.pretrain.VideoMAEPretrain`).

    Args:
        net: the network (its ``config`` and ``num_patches`` are read).
        num_masked: tokens hidden from the encoder ``M``; the encoder runs on ``N - M``.
        num_decoded: tokens that get a mask token in the decoder (``M`` for VideoMAE V1, the
            decoder's kept count with dual masking); default ``num_masked``.
    """
    return sum(pretrain_flops_by_operation(net, num_masked, num_decoded).values())


def _mask_counts(pl_module: L.LightningModule) -> tuple[int, int] | None:
    """``(masked for the encoder, decoded)`` token counts of the module's mask generator."""
    masking = getattr(pl_module, "masking", None)
    net = getattr(pl_module, "net", None)
    if masking is None or net is None or not hasattr(masking, "num_decoded"):
        return None
    grid = net.grid_size
    try:
        return int(masking.num_masked(grid)), int(masking.num_decoded(grid))
    except ValueError:  # a count that varies from batch to batch (dual masking on odd grids)
        return None


class ThroughputMonitor(L.Callback):
    """Log clips/s, tokens/s, MFU (CUDA), peak memory and the data-wait fraction while training.

    Args:
        flops_per_clip: training FLOPs of one clip; default: counted with
            :func:`pretrain_train_flops` from the module's network and mask generator (MFU is
            left out for modules without them).
        peak_flops: the device's peak FLOP/s; default: :func:`device_peak_flops` of the CUDA
            device name at the trainer's precision. No MFU on CPU.
        log_every_n_steps: default the trainer's ``log_every_n_steps``.
    """

    def __init__(
        self,
        flops_per_clip: float | None = None,
        peak_flops: float | None = None,
        log_every_n_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.flops_per_clip = flops_per_clip
        self.peak_flops = peak_flops
        self.log_every_n_steps = log_every_n_steps
        self.tokens_per_clip = 0
        self._start: float | None = None
        self._end: float | None = None
        self._clips = 0
        self._window: list[tuple[float, float, int]] = []  # (step time, data wait, clips)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Count the FLOPs per clip and find the device's peak."""
        net = getattr(pl_module, "net", None)
        self.tokens_per_clip = int(getattr(net, "num_patches", 0))
        counts = _mask_counts(pl_module)
        if self.flops_per_clip is None and counts is not None and hasattr(net, "config"):
            self.flops_per_clip = pretrain_train_flops(net, *counts)
        device = pl_module.device
        if self.peak_flops is None and device.type == "cuda":
            self.peak_flops = device_peak_flops(
                torch.cuda.get_device_name(device), str(trainer.precision)
            )
            if self.peak_flops is None:
                log.warning(
                    "no peak FLOP/s known for %s: perf/mfu not logged (pass peak_flops)",
                    torch.cuda.get_device_name(device),
                )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Do not count the gap between epochs (validation, checkpoints) as a step."""
        self._start = self._end = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Close the previous step (step time, data wait) and start timing this one."""
        now = time.perf_counter()
        if self._start is not None and self._end is not None:
            self._window.append((now - self._start, now - self._end, self._clips))
        self._start, self._end = now, None
        video = batch["video"] if isinstance(batch, dict) else batch[0]
        self._clips = int(video.shape[0])

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Mark the end of the step's work; log the window's means every n steps."""
        self._end = time.perf_counter()
        every = self.log_every_n_steps or trainer.log_every_n_steps or 1
        if len(self._window) >= every:
            for name, value in self.summarize(trainer, pl_module).items():
                pl_module.log(name, value, on_step=True, on_epoch=False, rank_zero_only=True)
            self._window.clear()

    def summarize(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """The metrics of the steps timed since the last log (empty when there are none)."""
        if not self._window:
            return {}
        step_time = sum(w[0] for w in self._window)
        wait = sum(w[1] for w in self._window)
        clips = sum(w[2] for w in self._window)
        world = max(1, trainer.world_size)
        clips_per_sec = clips * world / step_time
        metrics = {
            "perf/clips_per_sec": clips_per_sec,
            "perf/step_time_s": step_time / len(self._window),
            "perf/data_wait_frac": wait / step_time,
            "perf/peak_mem_gb": peak_memory_bytes(pl_module.device) / 2**30,
        }
        if self.tokens_per_clip:
            metrics["perf/tokens_per_sec"] = clips_per_sec * self.tokens_per_clip
        if self.flops_per_clip and self.peak_flops:
            metrics["perf/mfu"] = self.flops_per_clip * clips_per_sec / (self.peak_flops * world)
        return metrics
