"""Clip augmentation on whole clips as tensors (not frame by frame in PIL).

A decoded clip is uint8 ``(T, H, W, C)``. The training transform picks one crop window with the
official VideoMAE ``GroupMultiScaleCrop`` rule, cuts it from every frame (a view, no copy), resizes
the whole clip with one ``F.interpolate`` call, optionally flips it, and hands it over as uint8
``(C, T, H, W)`` lying channels last in memory (:mod:`videomae.data.layout`). Cropping before
resizing means only the pixels that are kept are interpolated.
Nothing here converts to float: normalization (and random erasing, whose boxes are drawn here)
runs on the device after the copy (:mod:`videomae.data.device`).

Resizing is bilinear with ``align_corners=False`` and antialiased by default, like the PIL
bilinear resize of the official code (``antialias=False`` is available; on uint8 clips it is not
faster). uint8 clips are resized in uint8 (PyTorch's fast uint8 kernel, within one grey level of
the float32 result), float clips in float32.

Fine-tuning (:class:`FinetuneTransform`) follows the official VideoMAE recipe: random resized
crop, RandAugment (timm's ``rand-m7-n4-mstd0.5-inc1``, the same ops and parameters on every
frame, :mod:`videomae.data.randaugment`), horizontal flip, random erasing (one box on every
frame, drawn here, applied after the device normalizes). Test time
(:class:`TestTransform`) takes temporal views x spatial crops (:func:`spatial_crops`, the
official short-side resize and evenly spaced crops along the long side).

Randomness comes from a ``numpy.random.Generator`` passed to each call, so a clip's augmentation is
reproducible from the generator's seed; ``None`` draws a fresh generator from OS entropy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from videomae.constants import IMAGENET_MEAN
from videomae.data.device import AUGMENT_ON, ERASE_FIELDS, ERASE_MODES, augment_row, erase_boxes
from videomae.data.layout import channels_last_clip
from videomae.data.layout import stack as stack_clips
from videomae.data.randaugment import ClipRandAugment

__all__ = [
    "EvalTransform",
    "FinetuneTransform",
    "MultiScaleCrop",
    "PretrainTransform",
    "RandomErasing",
    "RandomResizedCrop",
    "TestTransform",
    "center_crop_resize",
    "spatial_crops",
]

# crop sizes within this many pixels of the output size are snapped to it (official rule)
_SNAP_PIXELS = 3


def _resize(clip: torch.Tensor, size: int | tuple[int, int], antialias: bool) -> torch.Tensor:
    """Bilinear resize of every frame: ``(T, C, h, w)`` -> ``(T, C, size, size)``.

    ``size`` may also be an ``(height, width)`` pair. uint8 clips on the CPU stay uint8:
    PyTorch's uint8 bilinear kernel (channels-last, the one torchvision uses) is 5-10x faster
    than the float32 one and differs from it by at most one grey level (rounding). Other clips
    are resized in float32. Always returns a new tensor.
    """
    out_hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if clip.dtype == torch.uint8 and clip.device.type == "cpu":
        x = clip.contiguous(memory_format=torch.channels_last)
    else:
        x = clip.to(torch.float32)
    if tuple(x.shape[-2:]) == out_hw:
        return x.clone() if x is clip else x
    return F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=antialias)


class MultiScaleCrop:
    """Multi-scale crop of the official VideoMAE pretraining, one window for the whole clip.

    The crop side lengths are ``int(min(H, W) * s)`` for ``s`` in ``scales``; a length within
    3 pixels of ``size`` is snapped to ``size``. Height and width are chosen independently from
    these lengths with index distance ``|i - j| <= max_distort`` (so the aspect ratio varies a
    little), uniformly over the allowed pairs. The window's corner comes from a fixed grid of 5
    positions (four corners and center) or, with ``more_fix_crop``, 13 positions (plus the edge
    midpoints and the quarter points); with ``fix_crop=False`` it is uniform over the image. The
    window is then resized to ``size x size``.

    Args:
        size: output side length.
        scales: crop side lengths relative to the short side of the video, each in ``(0, 1]``.
        max_distort: largest index distance between the height and width scales.
        fix_crop: corner from the fixed grid (official default) instead of uniform.
        more_fix_crop: 13 grid positions instead of 5.
        antialias: antialiased bilinear resize, as PIL does (see the module docstring).
    """

    def __init__(
        self,
        size: int,
        scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
        max_distort: int = 1,
        fix_crop: bool = True,
        more_fix_crop: bool = True,
        antialias: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        scales = tuple(float(s) for s in scales)
        if not scales or any(not 0.0 < s <= 1.0 for s in scales):
            raise ValueError(f"scales must be a non-empty list of values in (0, 1], got {scales}")
        if max_distort < 0:
            raise ValueError(f"max_distort must be >= 0, got {max_distort}")
        self.size = int(size)
        self.scales = scales
        self.max_distort = int(max_distort)
        self.fix_crop = bool(fix_crop)
        self.more_fix_crop = bool(more_fix_crop)
        self.antialias = bool(antialias)

    def crop_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Allowed ``(crop_h, crop_w)`` pairs for a ``height x width`` video (with repeats)."""
        base = min(height, width)
        lengths = [int(base * s) for s in self.scales]
        lengths = [self.size if abs(n - self.size) < _SNAP_PIXELS else n for n in lengths]
        # snapping may exceed a tiny image; never crop outside it, never crop to zero
        hs = [max(1, min(n, height)) for n in lengths]
        ws = [max(1, min(n, width)) for n in lengths]
        return [
            (h, w)
            for i, h in enumerate(hs)
            for j, w in enumerate(ws)
            if abs(i - j) <= self.max_distort
        ]

    def grid_offsets(
        self, height: int, width: int, crop_h: int, crop_w: int
    ) -> list[tuple[int, int]]:
        """The fixed ``(top, left)`` positions of a ``crop_h x crop_w`` window (5 or 13)."""
        hs = (height - crop_h) // 4
        ws = (width - crop_w) // 4
        # (y, x) in units of the step: corners and center, then edge midpoints and quarter points
        grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
        if self.more_fix_crop:
            grid += [(2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
        return [(y * hs, x * ws) for y, x in grid]

    def sample(
        self, height: int, width: int, rng: np.random.Generator
    ) -> tuple[int, int, int, int]:
        """Draw one crop window ``(top, left, crop_h, crop_w)`` for a ``height x width`` video."""
        pairs = self.crop_sizes(height, width)
        crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
        if self.fix_crop:
            offsets = self.grid_offsets(height, width, crop_h, crop_w)
            top, left = offsets[int(rng.integers(len(offsets)))]
        else:
            top = int(rng.integers(height - crop_h + 1))
            left = int(rng.integers(width - crop_w + 1))
        return top, left, crop_h, crop_w

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Crop one window from every frame and resize it.

        Args:
            clip: ``(T, C, H, W)``, uint8 or float (any layout, e.g. a permuted view).
            rng: source of the crop choice.

        Returns:
            ``(T, C, size, size)``: uint8 for a uint8 clip on the CPU, else float32.
        """
        if clip.ndim != 4:
            raise ValueError(f"expected a clip (T, C, H, W), got shape {tuple(clip.shape)}")
        rng = np.random.default_rng() if rng is None else rng
        top, left, crop_h, crop_w = self.sample(clip.shape[-2], clip.shape[-1], rng)
        window = clip[..., top : top + crop_h, left : left + crop_w]
        return _resize(window, self.size, self.antialias)


def center_crop_resize(clip: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """Validation crop: resize the short side to ``size``, then take the central ``size x size``.

    Done the fast way round: the central square of side ``min(H, W)`` is cut first and resized
    once, which is the same picture up to sub-pixel alignment.

    Args:
        clip: ``(T, C, H, W)``, uint8 or float.
        size: output side length.

    Returns:
        ``(T, C, size, size)``: uint8 for a uint8 clip on the CPU, else float32.
    """
    if clip.ndim != 4:
        raise ValueError(f"expected a clip (T, C, H, W), got shape {tuple(clip.shape)}")
    height, width = clip.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return _resize(clip[..., top : top + side, left : left + side], size, antialias)


def _frames_to_tchw(frames: torch.Tensor) -> torch.Tensor:
    """Decoder output uint8 ``(T, H, W, C)`` -> ``(T, C, H, W)`` view (no copy)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected decoded frames (T, H, W, 3), got shape {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2)


class PretrainTransform:
    """Training augmentation: multi-scale crop, optional horizontal flip.

    Maps uint8 ``(T, H, W, C)`` to uint8 ``(C, T, img_size, img_size)`` (normalized on the
    device). The flip (probability 0.5, the whole clip) is off for data sets whose classes depend
    on left and right, such as Something-Something V2.
    """

    def __init__(
        self,
        img_size: int,
        scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
        flip: bool = False,
        antialias: bool = True,
    ) -> None:
        self.crop = MultiScaleCrop(img_size, scales, antialias=antialias)
        self.flip = bool(flip)

    def __call__(
        self, frames: torch.Tensor, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """uint8 ``(T, H, W, C)`` -> uint8 ``(C, T, img_size, img_size)``."""
        rng = np.random.default_rng() if rng is None else rng
        clip = self.crop(_frames_to_tchw(frames), rng)
        if self.flip and rng.random() < 0.5:
            clip = clip.flip(-1)
        return channels_last_clip(clip)


class EvalTransform:
    """Validation transform: short-side resize to ``img_size``, center crop.

    Maps uint8 ``(T, H, W, C)`` to uint8 ``(C, T, img_size, img_size)``; deterministic (the
    ``rng`` argument is accepted for a common signature and ignored). It is the one view of a
    one-crop :class:`TestTransform`, so validation sees exactly test's first view.
    """

    def __init__(self, img_size: int, antialias: bool = True) -> None:
        self._views = TestTransform(img_size, 1, antialias)
        self.img_size = self._views.img_size
        self.antialias = self._views.antialias

    def __call__(
        self, frames: torch.Tensor, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """uint8 ``(T, H, W, C)`` -> uint8 ``(C, T, img_size, img_size)``."""
        if frames.ndim != 4:
            raise ValueError(
                f"expected decoded frames (T, H, W, 3), got shape {tuple(frames.shape)}"
            )
        return self._views(frames)[0]


class RandomResizedCrop:
    """Random resized crop (Inception-style), one window for the whole clip.

    torchvision's sampling rule, which the official fine-tuning code also uses: up to 10 times,
    draw an area fraction uniformly from ``scale`` and an aspect ratio (width / height)
    log-uniformly from ``ratio``, round the window's sides and accept it if it fits in the image;
    the corner is then uniform over the positions where it fits. If no draw fits, fall back to
    the largest central window whose aspect ratio lies in ``ratio``. The window is resized to
    ``size x size`` (bilinear, see :func:`_resize`).

    Args:
        size: output side length.
        scale: range of the window's area relative to the image's area.
        ratio: range of the window's aspect ratio (width / height).
        antialias: antialiased bilinear resize.
    """

    def __init__(
        self,
        size: int,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        antialias: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        scale = tuple(float(v) for v in scale)
        ratio = tuple(float(v) for v in ratio)
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (min, max) with 0 < min <= max, got {scale}")
        if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (min, max) with 0 < min <= max, got {ratio}")
        self.size = int(size)
        self.scale = scale
        self.ratio = ratio
        self.antialias = bool(antialias)

    def sample(
        self, height: int, width: int, rng: np.random.Generator
    ) -> tuple[int, int, int, int]:
        """Draw one window ``(top, left, h, w)`` for a ``height x width`` image."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return top, left, h, w
        # fallback: the whole image, trimmed to the nearest allowed aspect ratio, centered
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Crop one window from every frame of ``(T, C, H, W)`` and resize it to ``size``.

        Returns ``(T, C, size, size)``: uint8 for a uint8 clip on the CPU, else float32; always
        a new tensor.
        """
        if clip.ndim != 4:
            raise ValueError(f"expected a clip (T, C, H, W), got shape {tuple(clip.shape)}")
        rng = np.random.default_rng() if rng is None else rng
        top, left, h, w = self.sample(clip.shape[-2], clip.shape[-1], rng)
        return _resize(clip[..., top : top + h, left : left + w], self.size, self.antialias)


class RandomErasing:
    """Random erasing (timm's rule) with one box for the whole clip, on a normalized clip.

    The box is drawn where the clip is augmented (:meth:`params`, in a data worker) and applied
    after normalization, on the device (:func:`videomae.data.device.erase_boxes`, which
    :meth:`__call__` also uses).

    With probability ``probability``, up to 10 times: draw an area fraction uniformly from
    ``[min_area, max_area]`` and an aspect ratio (height / width) log-uniformly from
    ``[min_aspect, max_aspect]``, round the sides and accept the box if it is non-empty and
    strictly smaller than the frame; its corner is uniform. The box is erased on every frame
    (the official VideoMAE code's "cube" erasing): ``pixel`` mode fills it with per-pixel
    standard normal noise (drawn independently per frame, as the official code does), ``rand``
    with one normal colour per channel, ``const`` with zeros (the normalized mean); the noise
    comes from a torch generator on the clip's device seeded with a number drawn from ``rng``.

    Args:
        probability: chance that a clip is erased.
        mode: ``pixel``, ``rand`` or ``const``.
        min_area: smallest box area relative to the frame.
        max_area: largest box area relative to the frame.
        min_aspect: smallest aspect ratio; ``max_aspect`` defaults to ``1 / min_aspect``.
        max_aspect: largest aspect ratio.
    """

    MODES = ERASE_MODES

    def __init__(
        self,
        probability: float = 0.25,
        mode: str = "pixel",
        min_area: float = 0.02,
        max_area: float = 1 / 3,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        mode = str(mode).lower()
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if not 0.0 < min_area <= max_area <= 1.0:
            raise ValueError(
                f"need 0 < min_area <= max_area <= 1, got min_area={min_area}, max_area={max_area}"
            )
        max_aspect = 1.0 / min_aspect if max_aspect is None and min_aspect > 0 else max_aspect
        if min_aspect <= 0 or max_aspect is None or max_aspect < min_aspect:
            raise ValueError(
                f"need 0 < min_aspect <= max_aspect, got min_aspect={min_aspect}, "
                f"max_aspect={max_aspect}"
            )
        self.probability = float(probability)
        self.mode = mode
        self.min_area = float(min_area)
        self.max_area = float(max_area)
        self.log_aspect = (math.log(min_aspect), math.log(max_aspect))

    def sample(
        self, height: int, width: int, rng: np.random.Generator
    ) -> tuple[int, int, int, int] | None:
        """Draw the box ``(top, left, h, w)`` for one clip, or ``None`` when it is not erased."""
        if rng.random() > self.probability:
            return None
        area = height * width
        for _ in range(10):
            target_area = rng.uniform(self.min_area, self.max_area) * area
            aspect = math.exp(rng.uniform(*self.log_aspect))
            h = round(math.sqrt(target_area * aspect))
            w = round(math.sqrt(target_area / aspect))
            if 0 < w < width and 0 < h < height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return top, left, h, w
        return None

    def params(self, height: int, width: int, rng: np.random.Generator) -> torch.Tensor:
        """One clip's ``erase`` row (:data:`videomae.data.device.ERASE_FIELDS`): its box, the
        seed of its noise and the fill mode; height 0 when the clip is not erased."""
        box = self.sample(height, width, rng)
        top, left, h, w = box if box is not None else (0, 0, 0, 0)
        seed = int(rng.integers(0, 2**62)) if box is not None else 0
        row = [top, left, h, w, seed, self.MODES.index(self.mode)]
        assert len(row) == len(ERASE_FIELDS)
        return torch.tensor(row, dtype=torch.int64)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Erase one box on every frame of a normalized float ``(C, T, H, W)`` clip, in place.

        Returns the same tensor (modified when a box was drawn).
        """
        if clip.ndim != 4 or not clip.is_floating_point():
            raise ValueError(
                f"expected a normalized float clip (C, T, H, W), got {clip.dtype} "
                f"shape {tuple(clip.shape)}"
            )
        rng = np.random.default_rng() if rng is None else rng
        row = self.params(clip.shape[-2], clip.shape[-1], rng)
        erase_boxes(clip.unsqueeze(0), row.unsqueeze(0))
        return clip


class FinetuneTransform:
    """Fine-tuning augmentation of the official VideoMAE recipe, on whole clips.

    uint8 ``(T, H, W, C)`` -> ``{"video": uint8 (C, T, img_size, img_size), "erase": int64
    row}``: random resized crop (one window per clip) -> RandAugment (same ops and parameters on
    every frame) -> horizontal flip with probability 0.5 (``flip=False`` for Something-Something,
    where left and right are part of the label); then, on the device, normalize -> random
    erasing (one box on every frame, drawn here: the ``erase`` row, see
    :mod:`videomae.data.device`).

    Order: the official code runs RandAugment on the full decoded frames and crops afterwards;
    here the crop comes first, so RandAugment (and the uint8 resize before it) touches only
    ``img_size**2`` pixels per frame instead of the whole frame (about 2.7x fewer at 224 from a
    320-pixel short side). The op distribution is nearly unchanged: translation is relative to
    the side, shear and rotation keep their angles, and the colour ops act per pixel; only the
    statistics of equalize/autocontrast/contrast are taken over the crop instead of the frame
    and the fill colour of geometric ops always stays in view.

    The input is never modified, so a dataset can call this ``num_sample`` times on the same
    decoded frames.

    Args:
        img_size: output side length.
        scale: random resized crop area range.
        ratio: random resized crop aspect ratio range.
        flip: random horizontal flip.
        rand_augment: timm RandAugment config string, or ``None`` to skip RandAugment.
        reprob: random erasing probability (0 turns it off: every clip's row says "none").
        antialias: antialiased bilinear resize.
        remode: random erasing mode (``pixel``, ``rand``, ``const``).
        rand_augment_on: ``workers`` (here) or ``device``: RandAugment and the flip are drawn
            here and applied on the device after the copy (the ``augment`` row,
            :func:`videomae.data.device.augment_clips`), with the same pixels.
    """

    def __init__(
        self,
        img_size: int,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip: bool = True,
        rand_augment: str | None = "rand-m7-n4-mstd0.5-inc1",
        reprob: float = 0.25,
        antialias: bool = True,
        remode: str = "pixel",
        rand_augment_on: str = "workers",
    ) -> None:
        if img_size < 1:
            raise ValueError(f"img_size must be >= 1, got {img_size}")
        if rand_augment_on not in AUGMENT_ON:
            raise ValueError(
                f"rand_augment_on must be one of {AUGMENT_ON}, got {rand_augment_on!r}"
            )
        self.on_device = rand_augment_on == "device"
        self.img_size = int(img_size)
        self.crop = RandomResizedCrop(img_size, scale, ratio, antialias=antialias)
        self.flip = bool(flip)
        fill = tuple(min(255, round(255 * v)) for v in IMAGENET_MEAN)
        self.rand_augment = ClipRandAugment(rand_augment, fill) if rand_augment else None
        self.erasing = RandomErasing(reprob, mode=remode) if reprob > 0 else None

    def __call__(
        self, frames: torch.Tensor, rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """uint8 ``(T, H, W, C)`` -> ``{"video": uint8 (C, T, size, size), "erase": int64
        (6,)}``, and ``"augment"``: float64 ``(4 + 2 n,)`` where RandAugment and the flip are
        left to the device."""
        rng = np.random.default_rng() if rng is None else rng
        if frames.dtype != torch.uint8:
            raise ValueError(f"expected uint8 frames (T, H, W, C), got {frames.dtype}")
        clip = self.crop(_frames_to_tchw(frames), rng)  # a new tensor
        # the same draws in the same order either way, so both give the same pixels
        ops = self.rand_augment.sample(rng) if self.rand_augment is not None else []
        flip = self.flip and rng.random() < 0.5
        if not self.on_device:
            if self.rand_augment is not None:
                clip = self.rand_augment.apply(clip, ops)
            if flip:
                clip = clip.flip(-1)
        if self.erasing is not None:
            erase = self.erasing.params(self.img_size, self.img_size, rng)
        else:
            erase = torch.zeros(len(ERASE_FIELDS), dtype=torch.int64)
        item = {"video": channels_last_clip(clip), "erase": erase}
        if self.on_device:
            augment = self.rand_augment
            slots, fill = (augment.config.num_ops, augment.fill) if augment else (0, (0, 0, 0))
            item["augment"] = augment_row(ops, flip, fill, slots)
        return item


# ------------------------------------------------------------------------------- test views


def spatial_crops(
    clip: torch.Tensor, size: int, num_crops: int, antialias: bool = True
) -> torch.Tensor:
    """The official multi-crop test views of one clip.

    The short side is resized to ``size`` (the long side to ``int(size * long / short)``, the
    official ``Resize`` rule), then ``num_crops`` windows of ``size x size`` are taken at
    ``int(i * (long' - size) / (num_crops - 1))`` along the long side: with 3 crops the start,
    the center and the end. One crop is the center crop, computed as in :class:`EvalTransform`
    (:func:`center_crop_resize`).

    Args:
        clip: ``(T, C, H, W)``, uint8 or float.
        size: crop side length (and short side after resizing).
        num_crops: number of spatial views, >= 1.

    Returns:
        ``(num_crops, T, C, size, size)``: uint8 for a uint8 clip on the CPU, else float32.
    """
    if clip.ndim != 4:
        raise ValueError(f"expected a clip (T, C, H, W), got shape {tuple(clip.shape)}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if num_crops < 1:
        raise ValueError(f"num_crops must be >= 1, got {num_crops}")
    if num_crops == 1:
        return center_crop_resize(clip, size, antialias).unsqueeze(0)
    height, width = clip.shape[-2:]
    if height <= width:
        out_hw = (size, int(size * width / height))
    else:
        out_hw = (int(size * height / width), size)
    resized = _resize(clip, out_hw, antialias)
    long_side = max(out_hw)
    step = (long_side - size) / (num_crops - 1)
    crops = []
    for i in range(num_crops):
        start = int(i * step)
        if height <= width:
            crops.append(resized[..., :, start : start + size])
        else:
            crops.append(resized[..., start : start + size, :])
    return stack_clips(crops)


class TestTransform:
    """Multi-view test transform: temporal views x spatial crops.

    Maps uint8 frames ``(V_t, T, H, W, C)`` (``V_t`` temporal views, stacked) or ``(T, H, W, C)``
    (one temporal view) to uint8 ``(V_t * num_crops, C, T, img_size, img_size)`` in
    temporal-major order (view ``v = t * num_crops + c``), each view cropped by
    :func:`spatial_crops` (normalized on the device). Deterministic; ``rng`` is accepted for a
    common signature and ignored. With one view this is :class:`EvalTransform`.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        img_size: int,
        num_crops: int = 1,
        antialias: bool = True,
    ) -> None:
        if img_size < 1:
            raise ValueError(f"img_size must be >= 1, got {img_size}")
        if num_crops < 1:
            raise ValueError(f"num_crops must be >= 1, got {num_crops}")
        self.img_size = int(img_size)
        self.num_crops = int(num_crops)
        self.antialias = bool(antialias)

    def __call__(
        self, frames: torch.Tensor, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """uint8 ``([V_t,] T, H, W, C)`` -> uint8 ``(V_t * num_crops, C, T, size, size)``."""
        if frames.ndim == 4:
            frames = frames.unsqueeze(0)
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(
                f"expected frames (V_t, T, H, W, 3) or (T, H, W, 3), got shape "
                f"{tuple(frames.shape)}"
            )
        views, length = frames.shape[:2]
        # all temporal views in one resize: (V_t * T, C, H, W)
        clip = frames.reshape(views * length, *frames.shape[2:]).permute(0, 3, 1, 2)
        crops = spatial_crops(clip, self.img_size, self.num_crops, self.antialias)
        size = self.img_size
        crops = crops.reshape(self.num_crops, views, length, 3, size, size)
        # (crop, view, T, C, H, W) -> (view, crop, C, T, H, W), temporal-major, channels last
        x = crops.permute(1, 0, 2, 4, 5, 3).contiguous()
        return x.view(views * self.num_crops, length, size, size, 3).permute(0, 4, 1, 2, 3)
