"""RandAugment on whole uint8 clips, the same ops and parameters on every frame.

timm's op set, magnitude scale and level -> argument rules (``auto_augment.py``), parsed from
timm's config strings such as ``rand-m7-n4-mstd0.5-inc1`` (:class:`RandAugmentConfig`) and
applied to uint8 ``(T, C, H, W)`` clips (:func:`apply_rand_augment_op`): the colour ops with
``torchvision.transforms.v2.functional``, the geometric ops as one bilinear ``grid_sample`` with
PIL's conventions. :class:`ClipRandAugment` draws one set of ops per clip; the fine-tuning
transform (:class:`videomae.data.transforms.FinetuneTransform`) runs it after the crop.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from videomae.constants import IMAGENET_MEAN

__all__ = [
    "DEFAULT_FILL",
    "RAND_AUGMENT_ALL_OPS",
    "RAND_AUGMENT_INCREASING_OPS",
    "RAND_AUGMENT_OPS",
    "ClipRandAugment",
    "RandAugmentConfig",
    "apply_rand_augment_op",
    "rand_augment_arg",
]

_LEVEL_DENOM = 10.0  # timm's magnitude scale: 0..10

RAND_AUGMENT_OPS: tuple[str, ...] = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "SolarizeAdd",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)
"""timm's ``_RAND_TRANSFORMS`` (``inc0``): the ops RandAugment draws from."""

RAND_AUGMENT_INCREASING_OPS: tuple[str, ...] = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)
"""timm's ``_RAND_INCREASING_TRANSFORMS`` (``inc1``): strength grows with the magnitude."""

RAND_AUGMENT_ALL_OPS: tuple[str, ...] = tuple(
    dict.fromkeys(RAND_AUGMENT_OPS + RAND_AUGMENT_INCREASING_OPS)
)
"""Every op name of both sets, once each: the op indices of rows drawn for the device."""

DEFAULT_FILL: tuple[int, int, int] = tuple(round(255 * v) for v in IMAGENET_MEAN)  # type: ignore[assignment]
"""Fill colour of pixels that geometric ops move in from outside: the ImageNet mean, 0..255."""


def _negate_half(value: float, rng: np.random.Generator) -> float:
    """``-value`` with probability 0.5 (timm's ``_randomly_negate``)."""
    return -value if rng.random() > 0.5 else value


def rand_augment_arg(name: str, magnitude: float, rng: np.random.Generator) -> tuple[float, ...]:
    """The argument of RandAugment op ``name`` at ``magnitude`` (timm's ``LEVEL_TO_ARG`` rules).

    ``magnitude`` is on timm's 0..10 scale. Signed ops (rotate, shear, translate, the
    ``*Increasing`` enhancements) draw their sign from ``rng`` with probability 0.5 each.
    Returns ``()`` for ops without an argument, else a one-element tuple.
    """
    level = magnitude / _LEVEL_DENOM
    if name in ("AutoContrast", "Equalize", "Invert"):
        return ()
    if name == "Rotate":
        return (_negate_half(level * 30.0, rng),)
    if name == "Posterize":
        return (int(level * 4),)
    if name == "PosterizeIncreasing":
        return (4 - int(level * 4),)
    if name == "Solarize":
        return (min(256, int(level * 256)),)
    if name == "SolarizeIncreasing":
        return (256 - min(256, int(level * 256)),)
    if name == "SolarizeAdd":
        return (min(128, int(level * 110)),)
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return (level * 1.8 + 0.1,)
    if name in (
        "ColorIncreasing",
        "ContrastIncreasing",
        "BrightnessIncreasing",
        "SharpnessIncreasing",
    ):
        return (max(0.1, 1.0 + _negate_half(level * 0.9, rng)),)
    if name in ("ShearX", "ShearY"):
        return (_negate_half(level * 0.3, rng),)
    if name in ("TranslateXRel", "TranslateYRel"):
        return (_negate_half(level * 0.45, rng),)
    raise ValueError(f"unknown RandAugment op {name!r}; known: {RAND_AUGMENT_OPS}")


def _affine_clip(
    clip: torch.Tensor, matrix: Sequence[float], fill: Sequence[float]
) -> torch.Tensor:
    """Inverse affine warp of every frame with PIL's ``Image.transform(AFFINE)`` convention.

    The output pixel whose center is ``(x, y)`` (pixel centers at ``i + 0.5``) takes the input
    at ``(a x + b y + c, d x + e y + f)`` for ``matrix = (a, b, c, d, e, f)``, bilinearly
    interpolated (edges replicated, as PIL does); where that point lies outside the frame the
    pixel gets ``fill``. One ``grid_sample`` call for the whole clip; uint8 in, uint8 out.
    """
    a, b, c, d, e, f = (float(v) for v in matrix)
    frames, _, height, width = clip.shape
    ys = torch.arange(height, dtype=torch.float32, device=clip.device).add_(0.5).view(-1, 1)
    xs = torch.arange(width, dtype=torch.float32, device=clip.device).add_(0.5).view(1, -1)
    x_in = a * xs + b * ys + c
    y_in = d * xs + e * ys + f
    inside = (x_in >= 0) & (x_in < width) & (y_in >= 0) & (y_in < height)
    grid = torch.stack((x_in * (2.0 / width) - 1.0, y_in * (2.0 / height) - 1.0), dim=-1)
    warped = F.grid_sample(
        clip.to(torch.float32),
        grid.unsqueeze(0).expand(frames, height, width, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    fills = [min(max(float(v), 0.0), 255.0) for v in fill]
    fills = fills * clip.shape[1] if len(fills) == 1 else fills
    if len(fills) != clip.shape[1]:
        raise ValueError(f"fill has {len(fills)} values for {clip.shape[1]} channels")
    # inside ? warped : fill, exactly (products with 1 and 0, sums with 0), faster than where;
    # the fill as Python numbers: no copy to a GPU (which would wait for it) per call
    inside_f = inside.to(torch.float32)
    outside = 1.0 - inside_f
    warped.mul_(inside_f)
    for channel, value in enumerate(fills):
        warped[:, channel].add_(outside, alpha=value)
    # bilinear weights and the fill keep the values in 0..255: rounding needs no clamp
    return warped.round_().to(torch.uint8)


@functools.cache
def _sharpness_kernel(device: torch.device, channels: int) -> torch.Tensor:
    """The 3x3 smoothing kernel of PIL's ``ImageEnhance.Sharpness`` (1 at the edges, 5 in the
    middle, over 13) per channel, made once per device without a copy from the host."""
    kernel = torch.full((3, 3), 1.0 / 13.0, dtype=torch.float32, device=device)
    kernel[1, 1] = 5.0 / 13.0
    return kernel.expand(channels, 1, 3, 3)


def _sharpness(clip: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's ``adjust_sharpness`` of a uint8 clip, the same numbers: the clip blended
    with its smoothed interior (rounded), ``factor`` 1 the clip itself. torchvision builds its
    kernel from a Python list on every call, which on a GPU is a copy that waits for the
    device; here it is made once (:func:`_sharpness_kernel`). Channels-last frames: the blur
    was 6x faster so (11 against 67 ms a 16x224x224 clip on one core)."""
    channels, height, width = clip.shape[-3:]
    if factor < 0:
        raise ValueError(f"Sharpness factor must be >= 0, got {factor}")
    if height <= 2 or width <= 2:
        return clip.clone()
    x = clip.to(torch.float32, memory_format=torch.channels_last)  # a new tensor, one pass
    blurred = F.conv2d(x, _sharpness_kernel(clip.device, channels), groups=channels).round_()
    interior = x[..., 1:-1, 1:-1]
    interior.add_(blurred.sub_(interior), alpha=1.0 - factor)
    return x.clamp_(0, 255).to(torch.uint8)


def _autocontrast(clip: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.autocontrast`` (no cutoff) per frame and channel, bit-exact.

    Each channel of each frame is stretched so that its darkest value becomes 0 and its
    brightest 255 (``floor(v * scale + offset)``, the lookup table PIL builds); a constant
    channel is left as it is.
    """
    flat = clip.reshape(clip.shape[0], clip.shape[1], -1)
    lo = flat.amin(dim=-1).to(torch.float64)
    hi = flat.amax(dim=-1).to(torch.float64)
    valid = hi > lo
    # tensor / tensor: a true division, like PIL's Python float (scalar / tensor is not)
    scale = torch.where(valid, torch.full_like(lo, 255.0) / (hi - lo).clamp_min(1.0), 1.0)
    offset = torch.where(valid, -lo * scale, torch.zeros_like(lo))
    levels = torch.arange(256, dtype=torch.float64, device=clip.device)
    lut = (levels * scale[..., None] + offset[..., None]).floor_().clamp_(0, 255).to(torch.uint8)
    out = torch.gather(lut, -1, flat.to(torch.int64))  # (T, C, H*W)
    return out.view(clip.shape)


def apply_rand_augment_op(
    clip: torch.Tensor, name: str, args: Sequence[float], fill: Sequence[float] = DEFAULT_FILL
) -> torch.Tensor:
    """Apply RandAugment op ``name`` with argument ``args`` to every frame of a uint8 clip.

    The ops are those of timm's ``auto_augment.py`` with the same meaning of the argument
    (see :func:`rand_augment_arg`): colour ops from ``torchvision.transforms.v2.functional``
    (within one grey level of PIL's ``ImageEnhance``; ``Invert``, ``Equalize``, ``Posterize``,
    ``Solarize``, ``SolarizeAdd`` and ``AutoContrast`` equal PIL's exactly), geometric ops by
    :func:`_affine_clip` with PIL's conventions (shear about the top-left corner, rotation
    counter-clockwise about the center, translation as a fraction of the side) and bilinear
    interpolation. Image statistics (equalize, autocontrast, contrast) are per frame, as when
    the official code applies the PIL op to each frame.

    Args:
        clip: uint8 ``(T, C, H, W)``.
        name: one of :data:`RAND_AUGMENT_OPS` or :data:`RAND_AUGMENT_INCREASING_OPS`.
        args: the op's argument (empty for ops without one).
        fill: colour (0..255 per channel) of pixels moved in from outside the frame.

    Returns:
        uint8 ``(T, C, H, W)``, a new tensor (the input is not modified).
    """
    if clip.ndim != 4 or clip.dtype != torch.uint8:
        raise ValueError(
            f"expected a uint8 clip (T, C, H, W), got {clip.dtype} shape {tuple(clip.shape)}"
        )
    base = name.removesuffix("Increasing")
    arg = float(args[0]) if args else 0.0
    height, width = clip.shape[-2:]
    if base == "AutoContrast":
        return _autocontrast(clip)
    if base == "Equalize":
        return TF.equalize(clip)
    if base == "Invert":
        return TF.invert(clip)
    if base == "Posterize":
        bits = int(arg)
        if not 0 <= bits <= 8:
            raise ValueError(f"Posterize bits must be in 0..8, got {bits}")
        return TF.posterize(clip, bits)
    # the point ops below avoid torch.where on uint8 (11 ms a 16x224x224 clip on one core, where
    # the uint8 arithmetic takes 4): v >= t -> 255 - v is v XOR 255
    if base == "Solarize":
        if math.isnan(arg) or arg > 255:  # no value reaches it
            return clip.clone()
        threshold = 0 if arg <= 0 else math.ceil(arg)
        flip = (clip >= threshold).to(torch.uint8).mul_(255)
        return flip.bitwise_xor_(clip)
    if base == "SolarizeAdd":
        add = int(arg)
        if 0 <= add <= 128:  # v < 128 -> v + add never passes 255
            return (clip < 128).to(torch.uint8).mul_(add).add_(clip)
        added = (clip.to(torch.int16) + add).clamp_(0, 255).to(torch.uint8)
        return torch.where(clip < 128, added, clip)
    if base == "Color":
        return TF.adjust_saturation(clip, arg)
    if base == "Contrast":
        return TF.adjust_contrast(clip, arg)
    if base == "Brightness":
        return TF.adjust_brightness(clip, arg)
    if base == "Sharpness":
        return _sharpness(clip, arg)
    if base == "ShearX":
        return _affine_clip(clip, (1.0, arg, 0.0, 0.0, 1.0, 0.0), fill)
    if base == "ShearY":
        return _affine_clip(clip, (1.0, 0.0, 0.0, arg, 1.0, 0.0), fill)
    if base == "TranslateXRel":
        return _affine_clip(clip, (1.0, 0.0, arg * width, 0.0, 1.0, 0.0), fill)
    if base == "TranslateYRel":
        return _affine_clip(clip, (1.0, 0.0, 0.0, 0.0, 1.0, arg * height), fill)
    if base == "Rotate":
        # PIL's Image.rotate: inverse map about the center, angle counter-clockwise
        theta = -math.radians(arg)
        cos, sin = math.cos(theta), math.sin(theta)
        cx, cy = width / 2.0, height / 2.0
        c = cx - cos * cx - sin * cy
        f = cy + sin * cx - cos * cy
        return _affine_clip(clip, (cos, sin, c, -sin, cos, f), fill)
    raise ValueError(f"unknown RandAugment op {name!r}; known: {RAND_AUGMENT_OPS}")


@dataclass(frozen=True)
class RandAugmentConfig:
    """A parsed timm RandAugment config string such as ``rand-m7-n4-mstd0.5-inc1``.

    Attributes:
        magnitude: ``m``, the mean magnitude on timm's 0..10 scale (default 10).
        num_ops: ``n``, ops applied per clip (default 2).
        prob: ``p``, probability of applying each drawn op (default 0.5).
        magnitude_std: ``mstd``, standard deviation of the gaussian magnitude noise (0: none;
            ``inf``, or a value over 100: magnitude uniform in ``[0, magnitude]``).
        magnitude_max: ``mmax``, upper clip of the magnitude (default 10).
        increasing: ``inc``, use the ``*Increasing`` op set (default off, as in timm).
    """

    magnitude: float = _LEVEL_DENOM
    num_ops: int = 2
    prob: float = 0.5
    magnitude_std: float = 0.0
    magnitude_max: float = _LEVEL_DENOM
    increasing: bool = False

    @classmethod
    def parse(cls, config: str) -> RandAugmentConfig:
        """Parse a config string (``rand`` then ``-``-separated ``m``/``n``/``p``/``mstd``/
        ``mmax``/``inc`` sections, any order); raises ``ValueError`` naming the string."""
        parts = str(config).split("-")
        if parts[0] != "rand":
            raise ValueError(f"RandAugment config {config!r} must start with 'rand'")
        values: dict[str, float | int | bool] = {}
        for part in parts[1:]:
            match = re.fullmatch(r"([a-z]+)(\d+(?:\.\d*)?)", part)
            if match is None:
                raise ValueError(f"RandAugment config {config!r}: cannot parse section {part!r}")
            key, text = match.groups()
            number = float(text)
            if key == "m":
                values["magnitude"] = number
            elif key == "n":
                if number != int(number) or number < 0:
                    raise ValueError(f"RandAugment config {config!r}: n must be an integer >= 0")
                values["num_ops"] = int(number)
            elif key == "p":
                if not 0.0 <= number <= 1.0:
                    raise ValueError(f"RandAugment config {config!r}: p must be in [0, 1]")
                values["prob"] = number
            elif key == "mstd":
                values["magnitude_std"] = math.inf if number > 100 else number
            elif key == "mmax":
                values["magnitude_max"] = number
            elif key == "inc":
                values["increasing"] = bool(int(number))
            else:
                raise ValueError(
                    f"RandAugment config {config!r}: unknown section {part!r} "
                    "(known: m, n, p, mstd, mmax, inc)"
                )
        return cls(**values)  # type: ignore[arg-type]


class ClipRandAugment:
    """RandAugment with the same ops and parameters on every frame of a clip.

    Follows timm's ``rand_augment_transform``: ``n`` ops are drawn uniformly from the op set
    with replacement; each is applied with probability ``p``; its magnitude is
    ``m + mstd * N(0, 1)`` clipped to ``[0, mmax]`` (``mmax`` 10 unless given), drawn per op;
    the magnitude maps to the op's argument by timm's rules (:func:`rand_augment_arg`). The
    official VideoMAE fine-tuning applies ``rand-m7-n4-mstd0.5-inc1`` this way to the frames
    of a clip (one draw per clip). Differences from timm's PIL ops: bilinear instead of
    bicubic resampling for the geometric ops, colour ops within one grey level of PIL.

    Args:
        config: timm config string, see :class:`RandAugmentConfig`.
        fill: colour (0..255 per channel) of pixels that geometric ops move in from outside;
            the ImageNet mean, as timm's ``create_transform`` sets it (the official VideoMAE
            code leaves timm's default grey 128).
    """

    def __init__(
        self, config: str = "rand-m7-n4-mstd0.5-inc1", fill: Sequence[float] = DEFAULT_FILL
    ) -> None:
        self.config = RandAugmentConfig.parse(config)
        self.config_str = str(config)
        fill = tuple(float(v) for v in fill)
        if any(not 0.0 <= v <= 255.0 for v in fill):
            raise ValueError(f"fill must be colour values in 0..255, got {fill}")
        self.fill = fill
        self.ops = RAND_AUGMENT_INCREASING_OPS if self.config.increasing else RAND_AUGMENT_OPS

    def sample_magnitude(self, rng: np.random.Generator) -> float:
        """One op's magnitude: noisy around ``m`` per ``mstd``, clipped to ``[0, mmax]``."""
        cfg = self.config
        magnitude = cfg.magnitude
        if cfg.magnitude_std == math.inf:
            magnitude = rng.uniform(0.0, magnitude)
        elif cfg.magnitude_std > 0:
            magnitude = rng.normal(magnitude, cfg.magnitude_std)
        return float(min(max(magnitude, 0.0), cfg.magnitude_max))

    def sample(self, rng: np.random.Generator) -> list[tuple[str, tuple[float, ...]]]:
        """Draw the ops for one clip: ``[(name, args), ...]``, skipped ops left out."""
        chosen = rng.integers(0, len(self.ops), size=self.config.num_ops)
        drawn = []
        for index in chosen:
            if self.config.prob < 1.0 and rng.random() > self.config.prob:
                continue
            name = self.ops[int(index)]
            drawn.append((name, rand_augment_arg(name, self.sample_magnitude(rng), rng)))
        return drawn

    def apply(self, clip: torch.Tensor, ops: Sequence[tuple[str, Sequence[float]]]) -> torch.Tensor:
        """uint8 ``(T, C, H, W)`` -> the clip after ``ops`` (drawn by :meth:`sample`), in
        order; the input is not modified."""
        if clip.ndim != 4 or clip.dtype != torch.uint8:
            raise ValueError(
                f"expected a uint8 clip (T, C, H, W), got {clip.dtype} shape {tuple(clip.shape)}"
            )
        if clip.shape[1] != len(self.fill):
            raise ValueError(f"fill has {len(self.fill)} values for {clip.shape[1]} channels")
        for name, args in ops:
            clip = apply_rand_augment_op(clip, name, args, self.fill)
        return clip

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """uint8 ``(T, C, H, W)`` -> augmented uint8 ``(T, C, H, W)`` (input not modified)."""
        rng = np.random.default_rng() if rng is None else rng
        return self.apply(clip, self.sample(rng))

    def __repr__(self) -> str:
        return f"ClipRandAugment({self.config_str!r}, fill={self.fill})"
