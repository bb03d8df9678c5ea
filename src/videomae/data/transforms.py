"""Clip augmentation on whole clips as tensors (not frame by frame in PIL).

A decoded clip is uint8 ``(T, H, W, C)``. The training transform picks one crop window with the
official VideoMAE ``GroupMultiScaleCrop`` rule, cuts it from every frame (a view, no copy), resizes
the whole clip with one ``F.interpolate`` call, optionally flips it, and normalizes it to float32
``(C, T, H, W)``. Cropping before resizing means only the pixels that are kept are interpolated.

Resizing is bilinear with ``align_corners=False`` and antialiased by default, like the PIL
bilinear resize of the official code (``antialias=False`` is available; on uint8 clips it is not
faster). uint8 clips are resized in uint8 (PyTorch's fast uint8 kernel, within one grey level of
the float32 result), float clips in float32; normalization is always done in float32.

Randomness comes from a ``numpy.random.Generator`` passed to each call, so a clip's augmentation is
reproducible from the generator's seed; ``None`` draws a fresh generator from OS entropy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from videomae.constants import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "EvalTransform",
    "MultiScaleCrop",
    "PretrainTransform",
    "center_crop_resize",
    "normalize",
]

# crop sizes within this many pixels of the output size are snapped to it (official rule)
_SNAP_PIXELS = 3


def _resize(clip: torch.Tensor, size: int, antialias: bool) -> torch.Tensor:
    """Bilinear resize of every frame: ``(T, C, h, w)`` -> ``(T, C, size, size)``.

    uint8 clips on the CPU stay uint8: PyTorch's uint8 bilinear kernel (channels-last, the one
    torchvision uses) is 5-10x faster than the float32 one and differs from it by at most one
    grey level (rounding). Other clips are resized in float32. Always returns a new tensor.
    """
    if clip.dtype == torch.uint8 and clip.device.type == "cpu":
        x = clip.contiguous(memory_format=torch.channels_last)
    else:
        x = clip.to(torch.float32)
    if tuple(x.shape[-2:]) == (size, size):
        return x.clone() if x is clip else x
    return F.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias
    )


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


def normalize(
    clip: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Scale to [0, 1], subtract ``mean``, divide by ``std`` (per channel) and move time inside.

    Args:
        clip: ``(T, C, H, W)`` with values in 0..255 (uint8, or float on the same scale).
        mean: per-channel mean in [0, 1] units.
        std: per-channel standard deviation in [0, 1] units.

    Returns:
        float32 ``(C, T, H, W)``, contiguous, a new tensor (the input is not modified).
    """
    if clip.ndim != 4:
        raise ValueError(f"expected a clip (T, C, H, W), got shape {tuple(clip.shape)}")
    channels = clip.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {channels} channels")
    m = torch.tensor([255.0 * v for v in mean], dtype=torch.float32).view(-1, 1, 1, 1)
    inv = torch.tensor([1.0 / (255.0 * v) for v in std], dtype=torch.float32).view(-1, 1, 1, 1)
    x = clip.permute(1, 0, 2, 3).to(torch.float32, memory_format=torch.contiguous_format)
    return torch.sub(x, m).mul_(inv)


def _frames_to_tchw(frames: torch.Tensor) -> torch.Tensor:
    """Decoder output uint8 ``(T, H, W, C)`` -> ``(T, C, H, W)`` view (no copy)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected decoded frames (T, H, W, 3), got shape {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2)


class PretrainTransform:
    """Training augmentation: multi-scale crop, optional horizontal flip, normalize.

    Maps uint8 ``(T, H, W, C)`` to float32 ``(C, T, img_size, img_size)``, normalized with
    ``mean``/``std``. The flip (probability 0.5, the whole clip) is off for data sets whose
    classes depend on left and right, such as Something-Something V2.
    """

    def __init__(
        self,
        img_size: int,
        scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
        flip: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        antialias: bool = True,
    ) -> None:
        self.crop = MultiScaleCrop(img_size, scales, antialias=antialias)
        self.flip = bool(flip)
        self.mean = tuple(mean)
        self.std = tuple(std)

    def __call__(
        self, frames: torch.Tensor, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """uint8 ``(T, H, W, C)`` -> normalized float32 ``(C, T, img_size, img_size)``."""
        rng = np.random.default_rng() if rng is None else rng
        clip = self.crop(_frames_to_tchw(frames), rng)
        if self.flip and rng.random() < 0.5:
            clip = clip.flip(-1)
        return normalize(clip, self.mean, self.std)


class EvalTransform:
    """Validation transform: short-side resize to ``img_size``, center crop, normalize.

    Maps uint8 ``(T, H, W, C)`` to float32 ``(C, T, img_size, img_size)``; deterministic (the
    ``rng`` argument is accepted for a common signature and ignored).
    """

    def __init__(
        self,
        img_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        antialias: bool = True,
    ) -> None:
        if img_size < 1:
            raise ValueError(f"img_size must be >= 1, got {img_size}")
        self.img_size = int(img_size)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.antialias = bool(antialias)

    def __call__(
        self, frames: torch.Tensor, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """uint8 ``(T, H, W, C)`` -> normalized float32 ``(C, T, img_size, img_size)``."""
        clip = center_crop_resize(_frames_to_tchw(frames), self.img_size, self.antialias)
        return normalize(clip, self.mean, self.std)
