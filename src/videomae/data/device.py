"""The part of the data path that runs on the device, after the uint8 batch is copied there.

Workers hand over uint8 clips ``(..., C, T, H, W)`` (a quarter of float32's bytes through the
worker queues, pinned memory and the bus), channels last in memory (:mod:`videomae.data.layout`).
:func:`finish_batch` turns them into the normalized contiguous float32 the networks take and
applies fine-tuning's random erasing, whose boxes the workers drew
(``erase``: one row per clip, :data:`ERASE_FIELDS`). It runs in the data modules'
``on_after_batch_transfer`` (:class:`FinishOnDevice`), in ``videomae-predict`` and
``videomae-extract`` and for the reconstruction pictures. A float ``video`` is taken as already
normalized and left alone.
"""

from __future__ import annotations

import functools
from collections.abc import MutableMapping, Sequence
from typing import Any

import torch

from videomae.constants import IMAGENET_MEAN, IMAGENET_STD
from videomae.data.randaugment import RAND_AUGMENT_ALL_OPS, apply_rand_augment_op

__all__ = [
    "AUGMENT_ON",
    "ERASE_FIELDS",
    "ERASE_MODES",
    "HOST_FIELDS",
    "FinishOnDevice",
    "augment_clips",
    "augment_row",
    "erase_boxes",
    "finish_batch",
    "host_batch",
    "normalize_video",
]

ERASE_FIELDS = ("top", "left", "height", "width", "seed", "mode")
"""Columns of a batch's ``erase`` rows (int64); ``height == 0``: the clip is not erased."""
ERASE_MODES = ("pixel", "rand", "const")
"""Random erasing fills (``mode`` column = index): per-pixel normal noise, one normal colour per
channel, zeros (the normalized mean)."""


@functools.cache
def _constants(
    device: torch.device, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``255 mean`` and ``1 / (255 std)`` as ``(C, 1, 1, 1)`` float32 tensors on ``device``,
    made once per device: a tensor built from a Python list on a GPU is a copy from pageable
    memory, which would synchronize the host with the device on every batch."""
    shape = (len(mean), 1, 1, 1)
    shift = torch.tensor([255.0 * m for m in mean], device=device).view(shape)
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=device).view(shape)
    return shift, scale


def normalize_video(
    video: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """uint8 (or 0..255 float) clips ``(..., C, T, H, W)`` -> float32 ``(x / 255 - mean) / std``
    per channel, computed as ``(x - 255 mean) * (1 / (255 std))`` on ``video``'s device."""
    if video.ndim < 4:
        raise ValueError(f"expected clips (..., C, T, H, W), got shape {tuple(video.shape)}")
    channels = video.shape[-4]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {channels} channels")
    shift, scale = _constants(video.device, tuple(mean), tuple(std))
    # one pass: to float32 and, for channels-last clips, to contiguous (C, T, H, W)
    x = video.to(torch.float32, memory_format=torch.contiguous_format)
    return x.sub_(shift).mul_(scale) if x is not video else (x - shift).mul_(scale)


def erase_boxes(video: torch.Tensor, erase: torch.Tensor | Sequence[Sequence[int]]) -> torch.Tensor:
    """Random erasing of normalized clips ``(B, C, T, H, W)``, in place: clip ``i``'s box
    ``erase[i]`` (:data:`ERASE_FIELDS`) on every frame, filled as its ``mode`` says; the noise
    comes from a generator on ``video``'s device seeded with the row's ``seed``. ``erase`` is an
    int64 tensor or the same rows as lists (kept on the host: :func:`host_batch`)."""
    rows = erase.tolist() if isinstance(erase, torch.Tensor) else [list(r) for r in erase]
    if len(rows) != video.shape[0] or any(len(r) != len(ERASE_FIELDS) for r in rows):
        raise ValueError(f"erase must hold {video.shape[0]} rows of {len(ERASE_FIELDS)} numbers")
    channels, frames = video.shape[1:3]
    for i, (top, left, h, w, seed, mode) in enumerate(rows):
        if h <= 0 or w <= 0:
            continue
        region = video[i, :, :, top : top + h, left : left + w]
        if ERASE_MODES[mode] == "const":
            region.zero_()
            continue
        generator = torch.Generator(device=video.device).manual_seed(int(seed))
        shape = (channels, frames, h, w) if ERASE_MODES[mode] == "pixel" else (channels, 1, 1, 1)
        noise = torch.randn(shape, generator=generator, device=video.device, dtype=video.dtype)
        region.copy_(noise.expand_as(region))
    return video


AUGMENT_ON = ("workers", "device")
"""Where fine-tuning's RandAugment and flip run: in the loader workers, or on the device after
the copy (the workers draw them: the ``augment`` rows, :func:`augment_row`)."""


def augment_row(
    ops: Sequence[tuple[str, Sequence[float]]], flip: bool, fill: Sequence[float], num_ops: int
) -> torch.Tensor:
    """One clip's drawn RandAugment ops and flip as a float64 row for :func:`augment_clips`:
    ``[flip, fill (3 values), then per op slot: op index in RAND_AUGMENT_ALL_OPS (-1: none),
    its argument]``, ``num_ops`` slots (a fixed length, so that rows stack into a batch)."""
    if len(ops) > num_ops or len(fill) != 3:
        raise ValueError(f"{len(ops)} ops for {num_ops} slots, or a fill of {len(fill)} values")
    row = [float(flip), *(float(v) for v in fill)]
    for slot in range(num_ops):
        if slot < len(ops):
            name, args = ops[slot]
            row += [float(RAND_AUGMENT_ALL_OPS.index(name)), float(args[0]) if args else 0.0]
        else:
            row += [-1.0, 0.0]
    return torch.tensor(row, dtype=torch.float64)


def augment_clips(
    video: torch.Tensor, rows: torch.Tensor | Sequence[Sequence[float]]
) -> torch.Tensor:
    """RandAugment and flip of uint8 clips ``(B, C, T, H, W)`` on their device, in place: clip
    ``i`` gets the ops of ``rows[i]`` (:func:`augment_row`) in order, then its flip; the same
    pixels as the workers' :class:`~videomae.data.transforms.FinetuneTransform` gives on the
    CPU (on a GPU within a grey level: its convolution, means and ``grid_sample`` round
    differently)."""
    rows = rows.tolist() if isinstance(rows, torch.Tensor) else [list(r) for r in rows]
    if len(rows) != video.shape[0] or video.dtype != torch.uint8:
        raise ValueError(
            f"augment must hold {video.shape[0]} rows for uint8 clips, got {len(rows)} rows "
            f"for {video.dtype}"
        )
    for i, row in enumerate(rows):
        flip, fill, slots = row[0] > 0, row[1:4], row[4:]
        ops = [(int(slots[k]), slots[k + 1]) for k in range(0, len(slots), 2) if slots[k] >= 0]
        if not ops and not flip:
            continue
        clip = video[i].permute(1, 0, 2, 3)  # (T, C, H, W)
        for index, arg in ops:
            clip = apply_rand_augment_op(clip, RAND_AUGMENT_ALL_OPS[index], (arg,), fill)
        if flip:
            clip = clip.flip(-1)
        video[i] = clip.permute(1, 0, 2, 3)
    return video


HOST_FIELDS = ("erase", "augment", "broken")
"""Batch fields read on the host (the erase boxes, the drawn RandAugment ops and flips, the
replaced videos' indices): kept there as Python lists, since reading them back from the device
would make the host wait for it."""


def host_batch(batch: Any) -> Any:
    """Before the copy to the device: a batch's :data:`HOST_FIELDS` become Python lists, so
    that they stay on the host."""
    if isinstance(batch, MutableMapping):
        for field in HOST_FIELDS:
            if isinstance(batch.get(field), torch.Tensor):
                batch[field] = batch[field].tolist()
    return batch


def finish_batch(batch: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Finish a batch's uint8 ``video`` on its device: its ``augment`` rows (RandAugment and
    flip drawn by the workers, :func:`augment_clips`), normalization, its ``erase`` rows; the
    same batch is returned (``augment`` and ``erase`` removed). Other batches pass through
    unchanged."""
    if not isinstance(batch, MutableMapping) or not isinstance(batch.get("video"), torch.Tensor):
        return batch
    video = batch["video"]
    if video.is_floating_point():
        return batch
    augment = batch.pop("augment", None)
    if augment is not None:
        video = augment_clips(video, augment)
    video = normalize_video(video)
    erase = batch.pop("erase", None)
    if erase is not None:
        erase_boxes(video, erase)
    batch["video"] = video
    return batch


class FinishOnDevice:
    """Data-module hooks around the copy of a batch to the device: the ``erase`` and
    ``augment`` rows and the ``broken`` indices stay on the host (:func:`host_batch`), then the
    uint8 ``video`` is augmented (where the rows ask), normalized and erased there
    (:func:`finish_batch`). Mixed into the data modules, first in their bases."""

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """The :data:`HOST_FIELDS` as lists (not copied to the device)."""
        return host_batch(batch)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 ``video`` -> normalized float32, RandAugment (``augment`` rows) and random
        erasing applied."""
        return finish_batch(batch)
