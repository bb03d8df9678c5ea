"""Tests of the fine-tuning augmentation and the multi-view test transform (issue 4, items 3, 5).

RandAugment is checked against timm's PIL implementation (the reference the official VideoMAE
code copies): the op set, config parsing, magnitude -> argument rules, and the ops themselves
(bit-exact for the lookup-table ops, within one or two grey levels for the interpolating ones).
"""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest
import timm.data.auto_augment as timm_aa
import torch
import torch.nn.functional as F
from PIL import Image

from videomae.constants import IMAGENET_MEAN, IMAGENET_STD
from videomae.data.device import finish_batch, normalize_video
from videomae.data.randaugment import (
    DEFAULT_FILL,
    RAND_AUGMENT_INCREASING_OPS,
    RAND_AUGMENT_OPS,
    ClipRandAugment,
    RandAugmentConfig,
    apply_rand_augment_op,
    rand_augment_arg,
)
from videomae.data.transforms import (
    EvalTransform,
    FinetuneTransform,
    RandomErasing,
    RandomResizedCrop,
    TestTransform,
    spatial_crops,
)

ALL_OPS = tuple(dict.fromkeys(RAND_AUGMENT_OPS + RAND_AUGMENT_INCREASING_OPS))


def textured_clip(
    frames: int = 4, height: int = 24, width: int = 32, seed: int = 0
) -> torch.Tensor:
    """uint8 ``(T, 3, H, W)``: gradients plus noise, values kept inside 20..230, frames differ."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    clip = []
    for t in range(frames):
        picture = np.stack([3 * x + 5 * t, 4 * y, 2 * (x + y) + 7 * t], axis=0).astype(np.float64)
        picture = 20 + (picture % 180) + rng.normal(0, 8, picture.shape)
        clip.append(np.clip(picture, 20, 230))
    return torch.from_numpy(np.stack(clip).astype(np.uint8))


def to_pil(frame: torch.Tensor) -> Image.Image:
    """uint8 ``(3, H, W)`` -> PIL RGB image."""
    return Image.fromarray(frame.permute(1, 2, 0).numpy())


def from_pil(image: Image.Image) -> torch.Tensor:
    """PIL RGB image -> uint8 ``(3, H, W)``."""
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def unnormalize(x: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Undo ImageNet normalization: back to the 0..255 scale."""
    shape = [1] * x.ndim
    shape[channel_dim] = 3
    mean = torch.tensor(IMAGENET_MEAN).view(shape)
    std = torch.tensor(IMAGENET_STD).view(shape)
    return (x * std + mean) * 255.0


# ------------------------------------------------------------------------- RandomResizedCrop


def test_random_resized_crop_windows_inside_and_within_bounds() -> None:
    crop = RandomResizedCrop(32)
    rng = np.random.default_rng(0)
    areas, ratios = [], []
    for _ in range(2000):
        top, left, h, w = crop.sample(64, 80, rng)
        assert top >= 0 and top + h <= 64 and left >= 0 and left + w <= 80 and h > 0 and w > 0
        areas.append(h * w / (64 * 80))
        ratios.append(w / h)
    # sides are rounded, so allow the rounding of one pixel on each side
    assert min(areas) >= 0.08 * (1 - 2 / math.sqrt(0.08 * 64 * 80)) and max(areas) <= 1.0
    assert min(ratios) >= 0.75 * (1 - 2 / 14) and max(ratios) <= 4 / 3 * (1 + 2 / 14)
    assert min(areas) < 0.12 and max(areas) > 0.85  # the whole range is used
    assert min(ratios) < 0.8 and max(ratios) > 1.25


def test_random_resized_crop_fallback_is_the_central_window() -> None:
    rng = np.random.default_rng(0)
    # areas above the image's: every draw fails; the image's ratio 1.25 is allowed -> all of it
    assert RandomResizedCrop(16, scale=(2.0, 3.0)).sample(64, 80, rng) == (0, 0, 64, 80)
    # a 10 x 400 strip: a window of >= 90% area and ratio <= 4/3 never fits its height
    crop = RandomResizedCrop(16, scale=(0.9, 1.0))
    for _ in range(5):
        assert crop.sample(10, 400, rng) == (0, (400 - 13) // 2, 10, 13)  # w = round(10 * 4/3)
        assert crop.sample(400, 10, rng) == ((400 - 13) // 2, 0, 13, 10)  # h = round(10 / .75)


def test_random_resized_crop_same_window_on_every_frame() -> None:
    g = torch.Generator().manual_seed(0)
    picture = torch.rand(3, 64, 80, generator=g) * 200
    clip = torch.stack([picture + 5.0 * t for t in range(5)])
    crop = RandomResizedCrop(24)
    out = crop(clip, np.random.default_rng(7))
    assert out.shape == (5, 3, 24, 24) and out.dtype == torch.float32
    for t in range(5):  # resizing is linear: frame t is frame 0 plus 5 t
        torch.testing.assert_close(out[t] - 5.0 * t, out[0], atol=1e-3, rtol=0)
    top, left, h, w = crop.sample(64, 80, np.random.default_rng(7))
    expected = F.interpolate(
        clip[:, :, top : top + h, left : left + w], size=(24, 24), mode="bilinear", antialias=True
    )
    torch.testing.assert_close(out, expected)
    small = crop(clip.to(torch.uint8), np.random.default_rng(7))
    assert small.dtype == torch.uint8 and small.shape == (5, 3, 24, 24)


def test_random_resized_crop_is_reproducible_and_validates() -> None:
    crop = RandomResizedCrop(16)
    clip = textured_clip(3, 40, 48)
    torch.testing.assert_close(
        crop(clip, np.random.default_rng(3)), crop(clip, np.random.default_rng(3))
    )
    windows = {crop.sample(40, 48, np.random.default_rng(s)) for s in range(20)}
    assert len(windows) > 15
    with pytest.raises(ValueError, match="size"):
        RandomResizedCrop(0)
    with pytest.raises(ValueError, match=r"scale.*\(0\.5, 0\.1\)"):
        RandomResizedCrop(8, scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="ratio"):
        RandomResizedCrop(8, ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        crop(clip[0])


# ---------------------------------------------------------------------------- RandAugment


def test_rand_augment_config_parsing() -> None:
    cfg = RandAugmentConfig.parse("rand-m7-n4-mstd0.5-inc1")
    assert cfg == RandAugmentConfig(7.0, 4, 0.5, 0.5, 10.0, True)
    assert RandAugmentConfig.parse("rand-n3-m9") == RandAugmentConfig(9.0, 3, 0.5, 0.0, 10.0, False)
    assert RandAugmentConfig.parse("rand-m5-p0.7-mmax8").prob == 0.7
    assert RandAugmentConfig.parse("rand-m5-p0.7-mmax8").magnitude_max == 8.0
    assert RandAugmentConfig.parse("rand-m9-mstd101").magnitude_std == math.inf
    assert RandAugmentConfig.parse("rand") == RandAugmentConfig()
    for bad in ("rnd-m9-n2", "rand-m9-x3", "rand-mfoo", "rand-tweights", "rand-n2.5", "rand-p2"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            RandAugmentConfig.parse(bad)
    with pytest.raises(ValueError, match="rand-m7-q1"):
        ClipRandAugment("rand-m7-q1")


@pytest.mark.parametrize("config", ["rand-m7-n4-mstd0.5-inc1", "rand-m9-n2-mstd0.5", "rand-m5-n3"])
def test_rand_augment_matches_timm_setup(config: str) -> None:
    reference = timm_aa.rand_augment_transform(config, {"img_mean": DEFAULT_FILL})
    ours = ClipRandAugment(config)
    assert ours.ops == tuple(op.name for op in reference.ops)
    assert ours.config.num_ops == reference.num_layers
    assert reference.choice_weights is None  # uniform choice with replacement
    for op in reference.ops:
        assert op.prob == ours.config.prob
        assert op.magnitude == ours.config.magnitude
        assert op.magnitude_std == ours.config.magnitude_std
    assert tuple(reference.ops[0].kwargs["fillcolor"]) == DEFAULT_FILL == (124, 116, 104)


def test_rand_augment_op_sets_are_timms() -> None:
    assert tuple(timm_aa._RAND_TRANSFORMS) == RAND_AUGMENT_OPS
    assert tuple(timm_aa._RAND_INCREASING_TRANSFORMS) == RAND_AUGMENT_INCREASING_OPS


def test_magnitude_to_argument_matches_timm() -> None:
    signed = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"}
    signed |= {n for n in ALL_OPS if n.endswith("Increasing") and not n.startswith(("Post", "Sol"))}
    rng = np.random.default_rng(0)
    random.seed(0)
    hparams = dict(timm_aa._HPARAMS_DEFAULT)
    for name in ALL_OPS:
        level_fn = timm_aa.LEVEL_TO_ARG[name]
        for magnitude in (0.0, 2.5, 5.0, 7.0, 7.6, 9.9, 10.0):
            ours = rand_augment_arg(name, magnitude, rng)
            if level_fn is None:
                assert ours == ()
                continue
            theirs = level_fn(magnitude, hparams)
            if name not in signed:
                assert ours == theirs, (name, magnitude)
            else:  # the same size of change, either sign (1 is "no change" for enhancements)
                neutral = 1.0 if name.endswith("Increasing") else 0.0
                assert math.isclose(
                    abs(ours[0] - neutral), abs(theirs[0] - neutral), abs_tol=1e-12
                ), (name, magnitude)
    # signs are drawn 50/50
    signs = [np.sign(rand_augment_arg("Rotate", 5.0, rng)[0]) for _ in range(400)]
    assert 150 < signs.count(1.0) < 250
    # a few values by hand: m7 -> rotate 21 deg, PosterizeIncreasing 4 - int(2.8) = 2 bits,
    # SolarizeIncreasing 256 - int(179.2) = 77, SolarizeAdd int(77.0) = 77, Color 1.36
    assert abs(rand_augment_arg("Rotate", 7.0, rng)[0]) == pytest.approx(21.0)
    assert rand_augment_arg("PosterizeIncreasing", 7.0, rng) == (2,)
    assert rand_augment_arg("SolarizeIncreasing", 7.0, rng) == (77,)
    assert rand_augment_arg("SolarizeAdd", 7.0, rng) == (77,)
    assert rand_augment_arg("Color", 7.0, rng)[0] == pytest.approx(1.36)
    with pytest.raises(ValueError, match="Cutout"):
        rand_augment_arg("Cutout", 5.0, rng)


@pytest.mark.parametrize("name", ALL_OPS)
def test_every_op_on_the_clip_equals_the_op_on_each_frame(name: str) -> None:
    clip = textured_clip(4, 24, 32)
    args = rand_augment_arg(name, 6.0, np.random.default_rng(1))
    out = apply_rand_augment_op(clip, name, args)
    frames = [apply_rand_augment_op(clip[t : t + 1], name, args) for t in range(len(clip))]
    assert out.dtype == torch.uint8 and out.shape == clip.shape
    assert torch.equal(out, torch.cat(frames))
    assert not torch.equal(out, clip), f"{name} {args} left the clip unchanged"
    # channels-last input (what the uint8 resize returns) gives the same result
    assert torch.equal(
        apply_rand_augment_op(clip.contiguous(memory_format=torch.channels_last), name, args), out
    )


@pytest.mark.parametrize(
    ("name", "args", "pil_op"),
    [
        ("Invert", (), lambda im: timm_aa.invert(im)),
        ("AutoContrast", (), lambda im: timm_aa.auto_contrast(im)),
        ("Equalize", (), lambda im: timm_aa.equalize(im)),
        ("PosterizeIncreasing", (1,), lambda im: timm_aa.posterize(im, 1)),
        ("Posterize", (3,), lambda im: timm_aa.posterize(im, 3)),
        ("Posterize", (8,), lambda im: timm_aa.posterize(im, 8)),
        ("SolarizeIncreasing", (77,), lambda im: timm_aa.solarize(im, 77)),
        ("Solarize", (200,), lambda im: timm_aa.solarize(im, 200)),
        ("Solarize", (256,), lambda im: timm_aa.solarize(im, 256)),
        ("Solarize", (0,), lambda im: timm_aa.solarize(im, 0)),
        ("Solarize", (99.5,), lambda im: timm_aa.solarize(im, 99.5)),
        ("SolarizeAdd", (77,), lambda im: timm_aa.solarize_add(im, 77)),
        ("SolarizeAdd", (128,), lambda im: timm_aa.solarize_add(im, 128)),
        ("SolarizeAdd", (200,), lambda im: timm_aa.solarize_add(im, 200)),
    ],
)
def test_lookup_table_ops_equal_timms_pil_ops(name: str, args: tuple, pil_op) -> None:
    clip = textured_clip(2, 24, 32, seed=3)
    clip[1, 0, :4, :4] = 0  # one frame reaches the ends of the range in one channel
    clip[1, 0, -4:, -4:] = 255
    out = apply_rand_augment_op(clip, name, args)
    for t in range(len(clip)):
        assert torch.equal(out[t], from_pil(pil_op(to_pil(clip[t])))), (name, t)


@pytest.mark.parametrize(
    ("name", "arg", "pil_fn"),
    [
        ("ShearX", 0.25, timm_aa.shear_x),
        ("ShearX", -0.2, timm_aa.shear_x),
        ("ShearY", 0.25, timm_aa.shear_y),
        ("TranslateXRel", 0.3, timm_aa.translate_x_rel),
        ("TranslateYRel", -0.3, timm_aa.translate_y_rel),
        ("Rotate", 25.0, timm_aa.rotate),
        ("Rotate", -17.0, timm_aa.rotate),
        ("ColorIncreasing", 0.3, timm_aa.color),
        ("Contrast", 1.6, timm_aa.contrast),
        ("Contrast", 0.3, timm_aa.contrast),
        ("Brightness", 0.4, timm_aa.brightness),
        ("SharpnessIncreasing", 1.8, timm_aa.sharpness),
    ],
)
def test_interpolating_ops_are_close_to_timms_pil_ops(name: str, arg: float, pil_fn) -> None:
    # PIL bilinear on the same pixel grid: conventions (sign, origin, fill) must agree
    clip = textured_clip(1, 48, 64, seed=5)
    out = apply_rand_augment_op(clip, name, (arg,))
    reference = from_pil(
        pil_fn(to_pil(clip[0]), arg, fillcolor=DEFAULT_FILL, resample=Image.Resampling.BILINEAR)
    )
    diff = (out[0].int() - reference.int()).abs()
    assert int(diff.max()) <= 2 and float(diff.float().mean()) < 0.6, (name, arg)


def test_geometric_ops_fill_with_the_fill_colour() -> None:
    clip = textured_clip(2, 24, 40)
    out = apply_rand_augment_op(clip, "TranslateXRel", (0.25,), fill=(1, 2, 3))
    # the picture moves 10 pixels left; the last 10 columns come from outside
    fill = torch.tensor([1, 2, 3], dtype=torch.uint8).view(1, 3, 1, 1)
    assert torch.equal(out[:, :, :, 30:], fill.expand(2, 3, 24, 10))
    assert torch.equal(out[:, :, :, :30], clip[:, :, :, 10:])
    # a fill outside 0..255 is held to the range, as the uint8 result is
    out = apply_rand_augment_op(clip, "TranslateXRel", (0.25,), fill=(-7, 300, 128))
    fill = torch.tensor([0, 255, 128], dtype=torch.uint8).view(1, 3, 1, 1)
    assert torch.equal(out[:, :, :, 30:], fill.expand(2, 3, 24, 10))


@pytest.mark.parametrize(
    ("threshold", "inverted"),
    [(float("nan"), False), (float("inf"), False), (300.0, False), (-0.5, True), (-math.inf, True)],
)
def test_solarize_thresholds_outside_the_pixel_range(threshold: float, inverted: bool) -> None:
    clip = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(2, 3, 16, 16)
    out = apply_rand_augment_op(clip, "Solarize", (threshold,))
    assert torch.equal(out, 255 - clip if inverted else clip)


def test_rand_augment_draws_like_timm() -> None:
    augment = ClipRandAugment("rand-m7-n4-mstd0.5-inc1")
    rng = np.random.default_rng(0)
    magnitudes = np.array([augment.sample_magnitude(rng) for _ in range(4000)])
    assert abs(magnitudes.mean() - 7.0) < 0.03 and abs(magnitudes.std() - 0.5) < 0.03
    clipped = ClipRandAugment("rand-m10-mstd2")
    high = [clipped.sample_magnitude(rng) for _ in range(400)]
    assert max(high) == 10.0 and sum(m == 10.0 for m in high) > 150  # half of them clipped
    uniform = np.array(
        [ClipRandAugment("rand-m8-mstd101").sample_magnitude(rng) for _ in range(2000)]
    )
    assert uniform.min() >= 0 and uniform.max() <= 8 and abs(uniform.mean() - 4.0) < 0.2
    assert ClipRandAugment("rand-m7").sample_magnitude(rng) == 7.0
    counts, names, repeats = [], set(), 0
    for _ in range(2000):
        drawn = augment.sample(rng)
        counts.append(len(drawn))
        names.update(name for name, _ in drawn)
        repeats += len({name for name, _ in drawn}) < len(drawn)
    assert abs(np.mean(counts) - 2.0) < 0.1  # n = 4 ops, each applied with p = 0.5
    assert max(counts) == 4 and min(counts) == 0
    assert names == set(RAND_AUGMENT_INCREASING_OPS)
    assert repeats > 0  # drawn with replacement
    assert ClipRandAugment("rand-m7-n3-p1").sample(rng).__len__() == 3


def test_rand_augment_call_same_on_every_frame_and_reproducible() -> None:
    picture = textured_clip(1, 24, 32)
    clip = picture.expand(5, -1, -1, -1).clone()
    before = clip.clone()
    augment = ClipRandAugment("rand-m9-n4-mstd0.5-inc1")
    changed = 0
    for seed in range(12):
        out = augment(clip, np.random.default_rng(seed))
        assert out.dtype == torch.uint8 and out.shape == clip.shape
        for t in range(1, 5):  # identical frames stay identical: same ops, same parameters
            assert torch.equal(out[t], out[0])
        assert torch.equal(out, augment(clip, np.random.default_rng(seed)))
        changed += not torch.equal(out, clip)
    assert changed >= 8
    assert torch.equal(clip, before)
    with pytest.raises(ValueError, match="uint8"):
        augment(clip.float())
    with pytest.raises(ValueError, match="fill"):
        ClipRandAugment(fill=(300, 0, 0))


def test_rand_augment_call_applies_the_sampled_ops_in_order() -> None:
    clip = textured_clip(3, 24, 32)
    augment = ClipRandAugment("rand-m7-n4-mstd0.5-inc1")
    for seed in range(5):
        ops = augment.sample(np.random.default_rng(seed))
        expected = clip
        for name, args in ops:
            expected = apply_rand_augment_op(expected, name, args, augment.fill)
        assert torch.equal(augment(clip, np.random.default_rng(seed)), expected)


# ---------------------------------------------------------------------------- RandomErasing


def test_random_erasing_probability_and_box_bounds() -> None:
    erasing = RandomErasing()
    rng = np.random.default_rng(0)
    boxes = [erasing.sample(32, 40, rng) for _ in range(4000)]
    drawn = [b for b in boxes if b is not None]
    assert abs(len(drawn) / len(boxes) - 0.25) < 0.025
    for top, left, h, w in drawn:
        assert top >= 0 and top + h <= 32 and left >= 0 and left + w <= 40
        assert 0 < h < 32 and 0 < w < 40
        assert 0.02 * 1280 * 0.6 <= h * w <= 1280 / 3 * 1.15  # rounded sides
        assert 0.3 * 0.7 <= h / w <= 1 / 0.3 / 0.7
    ratios = [h / w for _, _, h, w in drawn]
    assert min(ratios) < 0.45 and max(ratios) > 2.2
    assert RandomErasing(0.0).sample(32, 40, rng) is None


@pytest.mark.parametrize("mode", ["pixel", "rand", "const"])
def test_random_erasing_one_box_on_every_frame(mode: str) -> None:
    g = torch.Generator().manual_seed(0)
    clip = torch.rand(3, 5, 32, 40, generator=g) + 10.0  # far from N(0, 1) noise and from 0
    original = clip.clone()
    erasing = RandomErasing(probability=1.0, mode=mode)
    top, left, h, w = erasing.sample(32, 40, np.random.default_rng(4))
    out = erasing(clip, np.random.default_rng(4))
    assert out is clip  # in place
    inside = torch.zeros(32, 40, dtype=torch.bool)
    inside[top : top + h, left : left + w] = True
    assert torch.equal(out[..., ~inside], original[..., ~inside])
    box = out[:, :, top : top + h, left : left + w]
    assert bool((box < 7.0).all())  # every pixel of the box on every frame was replaced
    if mode == "const":
        assert bool((box == 0).all())
    elif mode == "rand":  # one colour per channel
        assert torch.equal(box, box[:, :1, :1, :1].expand_as(box))
    else:  # per-pixel noise, near N(0, 1)
        assert box.unique().numel() == box.numel()
        assert abs(float(box.mean())) < 0.3 and abs(float(box.std()) - 1.0) < 0.3


def test_random_erasing_validates() -> None:
    with pytest.raises(ValueError, match=r"mode.*'noise'"):
        RandomErasing(mode="noise")
    with pytest.raises(ValueError, match="probability"):
        RandomErasing(1.5)
    with pytest.raises(ValueError, match=r"min_area=0\.5"):
        RandomErasing(min_area=0.5, max_area=0.2)
    with pytest.raises(ValueError, match="float clip"):
        RandomErasing()(torch.zeros(3, 2, 8, 8, dtype=torch.uint8))


# ------------------------------------------------------------------------- FinetuneTransform


def test_finetune_transform_output_and_input_untouched() -> None:
    frames = textured_clip(8, 64, 80).permute(0, 2, 3, 1).contiguous()  # (T, H, W, C)
    before = frames.clone()
    transform = FinetuneTransform(32)
    outs = [transform(frames, np.random.default_rng(s)) for s in range(6)]
    for out in outs:
        # uint8 to the device; the erasing box travels as a row of 6 numbers
        assert out["video"].shape == (3, 8, 32, 32) and out["video"].dtype == torch.uint8
        assert out["video"].permute(1, 2, 3, 0).is_contiguous()  # channels last: (T, H, W, C)
        assert out["erase"].shape == (6,) and out["erase"].dtype == torch.int64
    assert torch.equal(frames, before)
    again = transform(frames, np.random.default_rng(0))
    assert torch.equal(outs[0]["video"], again["video"])
    assert torch.equal(outs[0]["erase"], again["erase"])
    assert not torch.equal(outs[0]["video"], outs[1]["video"])
    with pytest.raises(ValueError, match="img_size"):
        FinetuneTransform(0)
    with pytest.raises(ValueError, match="rand-x"):
        FinetuneTransform(32, rand_augment="rand-x")
    with pytest.raises(ValueError, match="uint8"):
        transform(frames.float())


def reference_normalize(clip: torch.Tensor) -> torch.Tensor:
    """The CPU computation the device path replaces: uint8 ``(T, C, H, W)`` -> float32
    ``(C, T, H, W)``, ``(x / 255 - mean) / std`` in float64, rounded to float32."""
    x = clip.permute(1, 0, 2, 3).to(torch.float64) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(3, 1, 1, 1)
    return ((x - mean) / std).to(torch.float32)


def test_finetune_transform_is_crop_randaugment_flip_then_device_normalize_erase() -> None:
    """Worker (crop, RandAugment, flip, draw the box) + device (normalize, erase) = the recipe
    done on the CPU in one go, within float32 rounding."""
    frames = textured_clip(4, 48, 64).permute(0, 2, 3, 1)
    transform = FinetuneTransform(24, reprob=1.0)
    items = [transform(frames, np.random.default_rng(seed)) for seed in range(4)]
    batch = {k: torch.stack([item[k] for item in items]) for k in ("video", "erase")}
    finished = finish_batch(batch)["video"]  # the device path, here on the CPU
    assert "erase" not in batch
    for seed in range(4):
        rng = np.random.default_rng(seed)
        clip = RandomResizedCrop(24)(frames.permute(0, 3, 1, 2), rng)
        clip = ClipRandAugment("rand-m7-n4-mstd0.5-inc1")(clip, rng)
        if rng.random() < 0.5:
            clip = clip.flip(-1)
        expected = RandomErasing(1.0)(reference_normalize(clip), rng)
        torch.testing.assert_close(finished[seed], expected, atol=1e-5, rtol=1e-5)


def test_device_normalization_matches_the_cpu_reference() -> None:
    clip = torch.randint(0, 256, (2, 5, 3, 8, 10), dtype=torch.uint8)  # (B, T, C, H, W)
    out = normalize_video(clip.permute(0, 2, 1, 3, 4))  # (B, C, T, H, W)
    assert out.dtype == torch.float32
    for b in range(2):
        torch.testing.assert_close(out[b], reference_normalize(clip[b]), atol=1e-5, rtol=1e-6)
    # test views (B, V, C, T, H, W) normalize per channel the same way
    views = clip.permute(0, 2, 1, 3, 4).unsqueeze(1).expand(2, 3, 3, 5, 8, 10)
    torch.testing.assert_close(normalize_video(views)[:, 2], out)
    # a float video is taken as normalized and left alone
    floats = {"video": out.clone()}
    assert torch.equal(finish_batch(floats)["video"], out)


def test_host_fields_stay_on_the_host_through_the_device_copy() -> None:
    """The erase boxes and the replaced-video indices are read on the host: they cross the
    batch-transfer hook as lists (the device copy moves only tensors), the video as a tensor."""
    from lightning.fabric.utilities.apply_func import move_data_to_device

    from videomae.callbacks.broken_videos import BrokenVideoLogger
    from videomae.data.device import FinishOnDevice

    batch = {
        "video": torch.zeros(2, 3, 2, 4, 4, dtype=torch.uint8),
        "erase": torch.tensor([[0, 0, 1, 1, 7, 2], [0, 0, 0, 0, 0, 0]]),
        "broken": torch.tensor([[3, -1], [-1, -1]]),
    }
    hooks = FinishOnDevice()
    moved = move_data_to_device(hooks.on_before_batch_transfer(batch, 0), "cpu")
    assert moved["erase"] == [[0, 0, 1, 1, 7, 2], [0, 0, 0, 0, 0, 0]]
    assert moved["broken"] == [[3, -1], [-1, -1]]
    done = hooks.on_after_batch_transfer(moved, 0)
    assert done["video"].dtype == torch.float32 and "erase" not in done
    counter = BrokenVideoLogger()
    counter._collect("train", done)
    assert counter._counts["train"] == {3: 1}


def test_finetune_transform_flip_switch() -> None:
    # square frames, a crop of the whole frame, no RandAugment, no erasing: only flips vary
    frames = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    frames[:, :, :8] = 255
    options = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), rand_augment=None, reprob=0.0)
    plain = FinetuneTransform(16, flip=False, **options)
    flipping = FinetuneTransform(16, flip=True, **options)
    reference = plain(frames, np.random.default_rng(0))["video"]
    assert float(reference[..., :4].float().mean()) > float(reference[..., -4:].float().mean())
    outcomes = set()
    for seed in range(20):
        assert torch.equal(plain(frames, np.random.default_rng(seed))["video"], reference)
        assert plain(frames, np.random.default_rng(seed))["erase"][2] == 0  # no box
        out = flipping(frames, np.random.default_rng(seed))["video"]
        if torch.equal(out, reference):
            outcomes.add("plain")
        else:
            torch.testing.assert_close(out, reference.flip(-1))
            outcomes.add("flipped")
    assert outcomes == {"plain", "flipped"}


# --------------------------------------------------------------------- test views and crops


def coordinate_clip(frames: int, height: int, width: int) -> torch.Tensor:
    """float ``(T, 3, H, W)``: channel 0 holds x, channel 1 holds y, channel 2 holds t."""
    x = torch.arange(width, dtype=torch.float32).view(1, 1, width).expand(frames, height, width)
    y = torch.arange(height, dtype=torch.float32).view(1, height, 1).expand(frames, height, width)
    t = torch.arange(frames, dtype=torch.float32).view(frames, 1, 1).expand(frames, height, width)
    return torch.stack([x, y, t], dim=1)


@pytest.mark.parametrize(
    ("width", "num_crops", "starts"),
    [
        (80, 3, [0, 24, 48]),  # step (80 - 32) / 2 = 24
        (81, 5, [0, 12, 24, 36, 49]),  # step 49 / 4 = 12.25, floored
        (80, 2, [0, 48]),
        (81, 1, [24]),  # center: (81 - 32) // 2
    ],
)
def test_spatial_crops_positions_without_resizing(width: int, num_crops: int, starts) -> None:
    clip = coordinate_clip(3, 32, width)  # short side already 32: the crops are plain slices
    crops = spatial_crops(clip, 32, num_crops)
    assert crops.shape == (num_crops, 3, 3, 32, 32)
    for c, start in enumerate(starts):
        torch.testing.assert_close(crops[c], clip[..., start : start + 32])
    # portrait: the same positions along the height
    tall = coordinate_clip(2, width, 32)
    crops = spatial_crops(tall, 32, num_crops)
    for c, start in enumerate(starts):
        torch.testing.assert_close(crops[c], tall[..., start : start + 32, :])


def test_spatial_crops_resize_the_short_side_first() -> None:
    # 64 x 162 -> short side 32: 32 x int(32 * 162 / 64) = 32 x 81, a 2x downscale both ways;
    # resized column J holds the original x = 2 J + 0.5 (a ramp stays a ramp), except at the
    # frame's own edges J = 0 and J = 80 where the antialiasing filter is cut off
    clip = coordinate_clip(2, 64, 162)
    crops = spatial_crops(clip, 32, 3)
    assert crops.shape == (3, 2, 3, 32, 32)
    for c, start in enumerate([0, 24, 49]):  # int(i * (81 - 32) / 2)
        columns = start + torch.arange(32)
        keep = (columns > 0) & (columns < 80)
        x = crops[c, :, 0][..., keep]
        expected = (2.0 * columns[keep] + 0.5).float().expand_as(x)
        torch.testing.assert_close(x, expected, atol=1e-3, rtol=0)
        y = crops[c, :, 1, 1:-1, :]
        expected_y = (2.0 * torch.arange(1, 31) + 0.5).float().view(31 - 1, 1).expand_as(y)
        torch.testing.assert_close(y, expected_y, atol=1e-3, rtol=0)
        t = torch.arange(2.0).view(2, 1, 1).expand(2, 32, 32)
        torch.testing.assert_close(crops[c, :, 2], t)
    small = spatial_crops(clip.to(torch.uint8), 32, 3)
    assert small.dtype == torch.uint8 and small.shape == (3, 2, 3, 32, 32)
    with pytest.raises(ValueError, match="num_crops"):
        spatial_crops(clip, 32, 0)


def test_test_transform_view_order_and_values() -> None:
    # 2 temporal views of 4 frames, 32 x 80: x in channel 0, 50 * view + frame in channel 1
    frames = torch.zeros(2, 4, 32, 80, 3, dtype=torch.uint8)
    frames[..., 0] = torch.arange(80, dtype=torch.uint8)
    frames[..., 1] = (
        (50 * torch.arange(2).view(2, 1) + torch.arange(4)).to(torch.uint8).view(2, 4, 1, 1)
    )
    before = frames.clone()
    transform = TestTransform(32, num_crops=3)
    out = transform(frames)
    assert out.shape == (6, 3, 4, 32, 32) and out.dtype == torch.uint8
    values = unnormalize(normalize_video(out), channel_dim=1)
    for t in range(2):
        for c, start in enumerate([0, 24, 48]):
            v = values[t * 3 + c]  # (C, T, H, W), temporal-major order
            expected_x = (start + torch.arange(32, dtype=torch.float32)).expand(4, 32, 32)
            torch.testing.assert_close(v[0], expected_x, atol=1e-3, rtol=0)
            expected_t = (50 * t + torch.arange(4, dtype=torch.float32)).view(4, 1, 1)
            torch.testing.assert_close(v[1], expected_t.expand(4, 32, 32), atol=1e-3, rtol=0)
    assert torch.equal(frames, before)
    torch.testing.assert_close(out, transform(frames, np.random.default_rng(5)))  # rng ignored


@pytest.mark.parametrize(("views", "crops"), [(2, 3), (5, 3), (1, 1), (3, 1)])
def test_test_transform_shapes(views: int, crops: int) -> None:
    frames = torch.randint(0, 256, (views, 4, 40, 56, 3), dtype=torch.uint8)
    out = TestTransform(32, num_crops=crops)(frames)
    assert out.shape == (views * crops, 3, 4, 32, 32)
    assert out.permute(0, 2, 3, 4, 1).is_contiguous()  # channels last: (V, T, H, W, C)
    single = TestTransform(32, num_crops=crops)(frames[0])  # (T, H, W, C): one temporal view
    assert single.shape == (crops, 3, 4, 32, 32)
    torch.testing.assert_close(single, out[:crops])


def test_test_transform_with_one_view_is_the_eval_transform() -> None:
    frames = torch.randint(0, 256, (4, 48, 64, 3), dtype=torch.uint8)
    torch.testing.assert_close(TestTransform(32)(frames)[0], EvalTransform(32)(frames))
    with pytest.raises(ValueError, match="num_crops"):
        TestTransform(32, num_crops=0)
    with pytest.raises(ValueError, match="shape"):
        TestTransform(32)(frames[..., :2])


# ------------------------------------------------------------ RandAugment and flip on the device


@pytest.mark.parametrize("config", ["rand-m9-n3-mstd0.5-inc1", "rand-m9-n3-mstd0.5"])
def test_rand_augment_on_the_device_gives_the_workers_pixels(config: str) -> None:
    """The workers draw the ops and the flip, the device applies them: the same pixels as the
    workers applying them, clip by clip, in a channels-last batch (both op sets)."""
    from videomae.data.device import augment_clips
    from videomae.data.layout import stack

    frames = textured_clip(6, 48, 64, seed=5).permute(0, 2, 3, 1).contiguous()  # (T, H, W, C)
    here = FinetuneTransform(32, rand_augment=config, reprob=0.5)
    there = FinetuneTransform(32, rand_augment=config, reprob=0.5, rand_augment_on="device")
    seeds = range(24)
    outs = [here(frames, np.random.default_rng(s)) for s in seeds]
    drawn = [there(frames, np.random.default_rng(s)) for s in seeds]
    assert all("augment" not in o for o in outs)
    rows = stack([d["augment"] for d in drawn])
    assert rows.shape == (24, 4 + 2 * 3) and rows.dtype == torch.float64
    assert (rows[:, 4::2] >= 0).sum() > 24  # ops were drawn (about half of 72)
    assert 0 < int(rows[:, 0].sum()) < 24  # some clips flipped, some not
    video = augment_clips(stack([d["video"] for d in drawn]), rows)
    assert torch.equal(video, stack([o["video"] for o in outs]))
    for o, d in zip(outs, drawn, strict=True):
        assert torch.equal(o["erase"], d["erase"])  # the draws after them are the same too
    plain = FinetuneTransform(32, rand_augment=None, flip=False, rand_augment_on="device")
    row = plain(frames, np.random.default_rng(0))["augment"]
    assert row.tolist() == [0.0, 0.0, 0.0, 0.0]  # nothing to do on the device


def test_augment_rows_are_checked() -> None:
    from videomae.data.device import augment_clips, augment_row

    with pytest.raises(ValueError, match="3 ops for 2 slots"):
        augment_row([("Invert", ())] * 3, False, (0, 0, 0), 2)
    with pytest.raises(ValueError, match="2 rows"):
        augment_clips(torch.zeros(3, 3, 2, 4, 4, dtype=torch.uint8), [[0.0] * 4] * 2)
    with pytest.raises(ValueError, match="rand_augment_on"):
        FinetuneTransform(32, rand_augment_on="gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rand_augment_on_cuda_matches_the_cpu_without_waiting_for_the_gpu() -> None:
    """Every op on a GPU batch: the CPU's pixels within rounding, and nothing in it makes the
    host wait for the GPU (sync debug mode raises on any synchronizing call)."""
    from videomae.data.device import augment_clips, augment_row
    from videomae.data.layout import channels_last_clip, stack
    from videomae.data.randaugment import RAND_AUGMENT_ALL_OPS, rand_augment_arg

    rng = np.random.default_rng(0)
    clips, rows = [], []
    for i, name in enumerate(RAND_AUGMENT_ALL_OPS):
        clips.append(channels_last_clip(textured_clip(4, 40, 48, seed=i)))
        rows.append(
            augment_row([(name, rand_augment_arg(name, 8.0, rng))], i % 2 == 1, (124, 116, 104), 1)
        )
    batch, rows = stack(clips), stack(rows)
    on_cpu = augment_clips(batch.clone(), rows)
    on_gpu = batch.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        on_gpu = augment_clips(on_gpu, rows.tolist())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    diff = (on_gpu.cpu().int() - on_cpu.int()).abs()
    assert int(diff.max()) <= 1 and float(diff.float().mean()) < 0.01


def test_sharpness_is_torchvisions_with_its_kernel_made_once() -> None:
    """Our Sharpness (its kernel cached per device, no copy from the host on a GPU) gives
    torchvision's numbers, for either memory layout, 1 or 3 channels and frames too small to
    blur."""
    import torchvision.transforms.v2.functional as TF

    g = torch.Generator().manual_seed(0)
    for shape in [(4, 3, 40, 48), (2, 3, 3, 3), (2, 3, 2, 5), (3, 1, 10, 12)]:
        clip = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
        for factor in (0.0, 0.1, 1.0, 1.7, 2.5):
            expected = TF.adjust_sharpness(clip, factor)
            for x in (clip, clip.contiguous(memory_format=torch.channels_last)):
                out = apply_rand_augment_op(x, "Sharpness", (factor,))
                assert torch.equal(out, expected), (shape, factor)
    with pytest.raises(ValueError, match="Sharpness factor"):
        apply_rand_augment_op(clip, "Sharpness", (-0.5,))
