"""A synthetic, labeled video data set made of real encoded video files.

The set is the project's embedded default for CPU pretraining / fine-tuning runs and for the
tests. It comes in two *scenes* (``SyntheticSpec.scene``); in both the label is a kind of motion
and no single frame reveals it.

**objects** (the harder scene): every video shows one large textured *main object* over a
textured background that pans in a random direction, with two or three smaller textured
distractor objects moving randomly. The label is the kind of motion of the main object:

======  ==============  ===========================================
label   name            main object motion (canonical form)
======  ==============  ===========================================
0       ``move_left``   translates to the left
1       ``move_right``  time reversal of ``move_left``
2       ``move_up``     translates upwards
3       ``move_down``   time reversal of ``move_up``
4       ``rotate_cw``   rotates clockwise (on screen)
5       ``rotate_ccw``  time reversal of ``rotate_cw``
6       ``grow``        scales up (log scale is a sawtooth, see below)
7       ``shrink``      time reversal of ``grow``
======  ==============  ===========================================

**A single frame does not reveal the class.** All random draws (textures, colors, shapes,
sizes, speeds, start positions, background pan, distractors, noise) are made in the same order
and from the same distributions whatever the label, and every quantity the motion acts on is a
*stationary* process with the same marginal distribution in every class:

* positions live on the torus of the frame (objects wrap around the borders) and start
  uniformly on it, so the main object's position in any frame is uniform for every class;
* the angle starts uniformly in ``[0, 2*pi)``, so it stays uniform when it rotates;
* the log scale starts uniformly in ``[log S_MIN, log S_MAX)`` and ``grow`` moves it along a
  sawtooth (it wraps back from the largest to the smallest size), so it stays uniform too;
* the odd class of each pair is *exactly* the even class played backwards: with the same
  generator state, ``render_video(spec, 2k + 1, rng)`` equals
  ``render_video(spec, 2k, rng)[::-1]``; all parameter distributions are symmetric under time
  reversal (pan and distractor directions are uniform, wobbles have uniform phases).

So the distribution of frame ``t`` is the same for all eight classes, for every ``t``: only
the motion across frames carries the label.

**drift** (the embedded default of ``data=synthetic`` and the scene of ``make demo``): the
whole frame is one vivid periodic texture that slides, wrapping around, in one of eight compass
directions (the label, classes in :data:`DRIFT_CLASS_NAMES`: ``drift_left``, ``drift_right``,
``drift_up``, ``drift_down``, ``drift_up_left``, ``drift_down_right``, ``drift_up_right``,
``drift_down_left``; the direction the content moves on screen), under the same distractor
objects and noise. The start offset is uniform on the torus, so every frame is again equally
likely in every class, and class ``2k + 1`` is again class ``2k`` played backwards. A tiny ViT
learns this global motion in a few hundred CPU steps; it does not learn the object motions above
at that budget (docs/engineering-notes.md).

Files are H.264 ``.mp4`` (libx264, yuv420p) and VP9 ``.webm`` (libvpx-vp9, yuv420p), half of
each class in each container, with a keyframe every 16 frames. Layout under ``root``::

    videos/train/000000.mp4, videos/train/000001.mp4, ...
    videos/val/000000.mp4, ...
    train.csv, val.csv   # VideoMAE list format: "videos/train/000012.webm 4" per line
    labels.txt           # one class name per line, line index = label
    spec.json            # full generation parameters, written last (completion marker)

Run ``python -m videomae.data.synthetic --root data/synthetic`` to generate the set of
``data=synthetic`` (the drift scene; ``--scene objects`` for the other).

Videos are rendered and encoded in fresh worker interpreters that import PyAV before anything
else: in a process where decord was imported before PyAV, decord's bundled libvpx shadows
PyAV's and VP9 encoding fails, so encoding never happens in the caller's process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "DRIFT_CLASS_NAMES",
    "SCENES",
    "SyntheticSpec",
    "ensure_synthetic",
    "generate",
    "main",
    "render_video",
]

logger = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = (
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "rotate_cw",
    "rotate_ccw",
    "grow",
    "shrink",
)
"""Class names of the ``objects`` scene; the index in this tuple is the label. Class ``2k + 1``
is class ``2k`` reversed."""

DRIFT_CLASS_NAMES: tuple[str, ...] = (
    "drift_left",
    "drift_right",
    "drift_up",
    "drift_down",
    "drift_up_left",
    "drift_down_right",
    "drift_up_right",
    "drift_down_left",
)
"""Class names of the ``drift`` scene (the direction the content moves on screen); class
``2k + 1`` is class ``2k`` reversed."""

SCENES: dict[str, tuple[str, ...]] = {"objects": CLASS_NAMES, "drift": DRIFT_CLASS_NAMES}
"""The scenes of the generator and their class names."""

# Unit direction (x, y; image y points down) of the *content's* motion of each even drift class.
_DRIFT_DIRECTIONS: tuple[tuple[float, float], ...] = (
    (-1.0, 0.0),
    (0.0, -1.0),
    (-math.sqrt(0.5), -math.sqrt(0.5)),
    (math.sqrt(0.5), -math.sqrt(0.5)),
)

GENERATOR_VERSION = 2
"""Bumped whenever the rendering or encoding changes; part of ``spec.json`` (2: x264 without
macroblock-tree rate control)."""

SPLITS: tuple[str, ...] = ("train", "val")

# Encoder settings. threads=1 and bitexact flags keep the encoded bytes deterministic. x264's
# macroblock-tree rate control (mbtree) is off: with it, the bytes of a video depend on what the
# process encoded before (x264 in PyAV 18.1), so on which worker made it and in what order.
GOP = 16
H264_OPTIONS: dict[str, str] = {
    "crf": "25",
    "preset": "veryfast",
    "threads": "1",
    "flags": "+bitexact",
    "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:mbtree=0",
}
VP9_OPTIONS: dict[str, str] = {
    "crf": "36",
    "b:v": "0",
    "deadline": "realtime",
    "cpu-used": "8",
    "g": str(GOP),
    "threads": "1",
    "row-mt": "0",
    "lag-in-frames": "0",
    "auto-alt-ref": "0",
    "flags": "+bitexact",
}
CONTAINERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("mp4", "libx264", H264_OPTIONS),
    ("webm", "libvpx-vp9", VP9_OPTIONS),
)

# Rendering parameters. Lengths are fractions of min(height, width); speeds are per frame.
TEXTURE_SIZE = 64
MAIN_RADIUS = (0.28, 0.34)  # bounding radius of the main object at scale 1
SCALE_RANGE = (0.45, 1.0)  # main object scale (log-uniform); min main radius > max distractor
DISTRACTOR_RADIUS = (0.04, 0.08)
MAX_DISTRACTORS = 3
MOVE_SPEED = (0.008, 0.014)  # main object translation speed
ROTATE_SPEED = (3.5, 6.0)  # degrees per frame
GROW_SPEED = (0.012, 0.018)  # log scale per frame
PAN_SPEED = (0.0015, 0.008)  # background pan
DRIFT_SPEED = (0.023, 0.039)  # the drift scene's texture (the label's motion)
DISTRACTOR_SPEED = (0.003, 0.012)
DISTRACTOR_SPIN = 5.0  # degrees per frame, uniform in [-x, x]
NOISE_SIGMA = (1.0, 3.0)  # per-pixel Gaussian noise, in 0..255 units
NUM_SHAPE_KINDS = 5  # disc, ellipse, polygon, star, blob

_LIST_NAMES = {"train": "train.csv", "val": "val.csv"}
_LABELS_NAME = "labels.txt"
_SPEC_NAME = "spec.json"
_FLOAT_FIELDS = frozenset({"motion_speed", "background_pan"})
_OWN_ENTRIES = frozenset({"videos", "train.csv", "val.csv", "labels.txt", "spec.json"})


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of a synthetic data set; equal specs give identical data sets.

    Attributes:
        num_classes: number of classes, the first ``num_classes`` of the scene's class names
            (:data:`SCENES`).
        train_per_class: training videos per class.
        val_per_class: validation videos per class.
        num_frames: frames per video (at least 8).
        height: frame height in pixels (even, at least 32, for yuv420p).
        width: frame width in pixels (even, at least 32, for yuv420p).
        fps: frame rate written into the files.
        seed: master seed; video ``i`` of split ``s`` uses the stream ``(seed, s, i)``.
        motion_speed: factor on the main object's translation, rotation and growth speeds
            (``MOVE_SPEED``, ``ROTATE_SPEED``, ``GROW_SPEED``); > 0.
        max_distractors: at most this many distractor objects per video (``0..MAX_DISTRACTORS``;
            a video draws between ``min(2, max_distractors)`` and ``max_distractors``).
        background_pan: factor on the background's pan speed (``PAN_SPEED``); 0 keeps the
            background still. The ``objects`` scene only (the drift scene has no background
            besides the drifting texture): another value than 1 is refused there.
        scene: ``"objects"`` (a main object's motion) or ``"drift"`` (the whole texture's
            direction); see the module docstring. ``motion_speed`` scales the drift speed
            (``DRIFT_SPEED``) too. The texture wraps around, so a shift of half the frame or
            more between two *sampled* frames is ambiguous: with a clip sampling rate ``r`` keep
            ``motion_speed`` below ``0.5 / (r * DRIFT_SPEED[1])`` (6.4 at ``r = 2``; phase
            correlation of frames 2 apart finds every direction right up to 6, 79% at 8). A
            shift of half the frame between consecutive frames (``motion_speed`` >= 12.8) is
            refused.

    ``motion_speed``, ``max_distractors`` and ``background_pan`` make easier sets; their
    defaults give the standard set. Every random draw is made whatever their values, so the
    class of a video never shows in a single frame.
    """

    num_classes: int = len(CLASS_NAMES)
    train_per_class: int = 40
    val_per_class: int = 10
    num_frames: int = 48
    height: int = 128
    width: int = 128
    fps: int = 12
    seed: int = 0
    motion_speed: float = 1.0
    max_distractors: int = MAX_DISTRACTORS
    background_pan: float = 1.0
    scene: str = "objects"

    def __post_init__(self) -> None:
        """Validate every field; raise ``ValueError`` naming the first bad one."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "scene":
                if not isinstance(value, str) or value not in SCENES:
                    raise ValueError(
                        f"SyntheticSpec.{f.name} must be one of {', '.join(SCENES)}, got {value!r}"
                    )
                continue
            kinds = (int, np.integer) if f.name not in _FLOAT_FIELDS else (int, float, np.number)
            if isinstance(value, bool) or not isinstance(value, kinds):
                kind = "a number" if f.name in _FLOAT_FIELDS else "an int"
                raise ValueError(f"SyntheticSpec.{f.name} must be {kind}, got {value!r}")
        if not 1 <= self.num_classes <= len(SCENES[self.scene]):
            raise ValueError(
                f"SyntheticSpec.num_classes must be in 1..{len(SCENES[self.scene])}, "
                f"got {self.num_classes}"
            )
        for name in ("train_per_class", "val_per_class", "fps"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"SyntheticSpec.{name} must be positive, got {value}")
        if self.num_frames < 8:
            raise ValueError(f"SyntheticSpec.num_frames must be >= 8, got {self.num_frames}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < 32 or value % 2:
                raise ValueError(
                    f"SyntheticSpec.{name} must be an even number >= 32 (yuv420p), got {value}"
                )
        if self.seed < 0:
            raise ValueError(f"SyntheticSpec.seed must be >= 0, got {self.seed}")
        if not (math.isfinite(self.motion_speed) and self.motion_speed > 0):
            raise ValueError(
                f"SyntheticSpec.motion_speed must be a finite number > 0, got {self.motion_speed}"
            )
        if not (math.isfinite(self.background_pan) and self.background_pan >= 0):
            raise ValueError(
                "SyntheticSpec.background_pan must be a finite number >= 0, "
                f"got {self.background_pan}"
            )
        if self.scene == "drift" and self.motion_speed * DRIFT_SPEED[1] >= 0.5:
            raise ValueError(
                "SyntheticSpec.motion_speed makes the 'drift' scene move half the frame or more "
                f"per frame (ambiguous on the wrapping texture): {self.motion_speed} >= "
                f"{0.5 / DRIFT_SPEED[1]:.1f}"
            )
        if self.scene == "drift" and self.background_pan != 1.0:
            raise ValueError(
                "SyntheticSpec.background_pan applies to the 'objects' scene only (the 'drift' "
                f"scene's motion is scaled by motion_speed), got {self.background_pan}"
            )
        if not 0 <= self.max_distractors <= MAX_DISTRACTORS:
            raise ValueError(
                f"SyntheticSpec.max_distractors must be in 0..{MAX_DISTRACTORS}, "
                f"got {self.max_distractors}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the fields plus everything else that determines the generated files."""
        return {
            "generator_version": GENERATOR_VERSION,
            **{k: _field_value(k, v) for k, v in asdict(self).items()},
            "class_names": list(self.class_names),
            "encoders": {ext: {"codec": codec, **opts} for ext, codec, opts in CONTAINERS},
            "render": {
                "texture_size": TEXTURE_SIZE,
                "main_radius": list(MAIN_RADIUS),
                "scale_range": list(SCALE_RANGE),
                "distractor_radius": list(DISTRACTOR_RADIUS),
                "move_speed": list(MOVE_SPEED),
                "rotate_speed_deg": list(ROTATE_SPEED),
                "grow_speed_log": list(GROW_SPEED),
                "pan_speed": list(PAN_SPEED),
                "drift_speed": list(DRIFT_SPEED),
                "distractor_speed": list(DISTRACTOR_SPEED),
                "distractor_spin_deg": DISTRACTOR_SPIN,
                "noise_sigma": list(NOISE_SIGMA),
            },
        }

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the set's classes (label = index): the first ``num_classes`` of the
        scene's."""
        return SCENES[self.scene][: self.num_classes]


def _field_value(name: str, value: Any) -> Any:
    """A spec field as written into ``spec.json`` (plain str, float or int)."""
    if name == "scene":
        return str(value)
    return float(value) if name in _FLOAT_FIELDS else int(value)


# --------------------------------------------------------------------------------------------
# Rendering (pure numpy, no I/O)
# --------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _periodic_noise(rng: np.random.Generator, h: int, w: int, slope: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise of shape (h, w) that tiles periodically."""
    white = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freq = np.sqrt(fy * fy + fx * fx)
    freq[0, 0] = 1.0
    spectrum = np.fft.rfft2(white) / np.maximum(freq, 1.5 / max(h, w)) ** slope
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(h, w))
    return (field / (field.std() + 1e-8)).astype(np.float32)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One HSV color (all in [0, 1]) to RGB in [0, 255]."""
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    rgb = v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return (rgb * 255.0).astype(np.float32)


def _texture(rng: np.random.Generator, h: int, w: int, *, vivid: bool) -> np.ndarray:
    """A periodic two-color texture of shape (h, w, 3), float32 in [0, 255]."""
    slope = _uniform(rng, (0.9, 1.6))
    field = _periodic_noise(rng, h, w, slope)
    detail = _periodic_noise(rng, h, w, 0.4)
    hue = float(rng.random())
    hue2 = (hue + _uniform(rng, (-0.2, 0.2))) % 1.0
    if vivid:
        sat = _uniform(rng, (0.45, 1.0))
        dark, bright = _uniform(rng, (0.1, 0.4)), _uniform(rng, (0.75, 1.0))
        gain = _uniform(rng, (1.5, 3.0))
    else:
        sat = _uniform(rng, (0.1, 0.5))
        dark, bright = _uniform(rng, (0.25, 0.4)), _uniform(rng, (0.5, 0.7))
        gain = _uniform(rng, (0.8, 1.5))
    c0 = _hsv_to_rgb(hue, sat, dark)
    c1 = _hsv_to_rgb(hue2, sat, bright)
    mix = 1.0 / (1.0 + np.exp(-gain * field))
    tex = c0 + (c1 - c0) * mix[..., None]
    tex *= (1.0 + 0.08 * detail)[..., None]
    return np.clip(tex, 0.0, 255.0).astype(np.float32)


def _sample_periodic(tex: np.ndarray, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a periodic texture (h, w, C) at float coordinates (any shape)."""
    h, w, channels = tex.shape
    flat = tex.reshape(h * w, channels)
    y0f = np.floor(ty)
    x0f = np.floor(tx)
    fy = (ty - y0f).astype(np.float32)[..., None]
    fx = (tx - x0f).astype(np.float32)[..., None]
    y0 = y0f.astype(np.int32) % h
    x0 = x0f.astype(np.int32) % w
    y1 = np.where(y0 == h - 1, 0, y0 + 1) * w
    x1 = np.where(x0 == w - 1, 0, x0 + 1)
    y0 *= w
    c00 = flat.take(y0 + x0, axis=0)
    c01 = flat.take(y0 + x1, axis=0)
    c10 = flat.take(y1 + x0, axis=0)
    c11 = flat.take(y1 + x1, axis=0)
    top = c00 + (c01 - c00) * fx
    bottom = c10 + (c11 - c10) * fx
    return top + (bottom - top) * fy


def _pan(tex: np.ndarray, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
    """Frames (T, h, w, C) of a periodic texture shifted by (ty[t], tx[t]), bilinear."""
    h, w, _ = tex.shape
    tiled = np.tile(tex, (2, 2, 1))  # windows of (h + 1, w + 1) at offsets < (h, w) fit
    out = np.empty((len(ty), h, w, tex.shape[2]), dtype=np.float32)
    for i, (y, x) in enumerate(zip(ty, tx, strict=True)):
        iy, ix = math.floor(y), math.floor(x)
        fy, fx = np.float32(y - iy), np.float32(x - ix)
        iy, ix = iy % h, ix % w
        win = tiled[iy : iy + h + 1, ix : ix + w + 1]
        top = win[:-1, :-1] + (win[:-1, 1:] - win[:-1, :-1]) * fx
        bottom = win[1:, :-1] + (win[1:, 1:] - win[1:, :-1]) * fx
        out[i] = top + (bottom - top) * fy
    return out


@dataclass(frozen=True)
class _Shape:
    """A star-shaped outline given by its radius as a function of the polar angle (max 1)."""

    kind: int
    n: int
    param: float
    offset: float
    amps: tuple[float, ...]
    phases: tuple[float, ...]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Shape:
        """Draw a random shape; always consumes the same number of random values."""
        kind = int(rng.integers(NUM_SHAPE_KINDS))
        n = int(rng.integers(3, 7))
        param = float(rng.uniform(0.45, 0.8))
        offset = float(rng.uniform(0.0, 2.0 * math.pi))
        amps = tuple(float(a) for a in rng.uniform(0.0, 0.12, size=3))
        phases = tuple(float(p) for p in rng.uniform(0.0, 2.0 * math.pi, size=3))
        return cls(kind, n, param, offset, amps, phases)

    def radius(self, phi: np.ndarray) -> np.ndarray:
        """Outline radius (in units of the bounding radius) at polar angles ``phi``."""
        if self.kind == 0:  # disc
            return np.ones_like(phi)
        if self.kind == 1:  # ellipse with axis ratio ``param``
            b = self.param
            return b / np.sqrt((b * np.cos(phi)) ** 2 + np.sin(phi) ** 2)
        sector = 2.0 * math.pi / self.n
        local = np.mod(phi + self.offset, sector)
        if self.kind == 2:  # regular polygon with ``n`` sides
            return math.cos(math.pi / self.n) / np.cos(local - math.pi / self.n)
        if self.kind == 3:  # star with ``n`` tips and inner radius ``param``
            inner = self.param
            return inner + (1.0 - inner) * np.abs(1.0 - 2.0 * local / sector)
        # blob: a disc with a few low harmonics carved out
        r = np.ones_like(phi)
        for k, (a, p) in enumerate(zip(self.amps, self.phases, strict=True), start=2):
            r = r - a * (1.0 + np.cos(k * phi + p))
        return r


@dataclass(frozen=True)
class _Sprite:
    """A textured object and its per-frame trajectory (all arrays have length T)."""

    texture: np.ndarray
    shape: _Shape
    radius: float  # bounding radius in pixels at scale 1
    tex_density: float  # texture pixels per object pixel at scale 1
    tex_offset: tuple[float, float]
    cx: np.ndarray
    cy: np.ndarray
    angle: np.ndarray
    scale: np.ndarray


def _draw_sprite(frames: np.ndarray, sprite: _Sprite, patch: int, rim: bool) -> None:
    """Alpha-composite ``sprite`` into ``frames`` (T, H, W, 3) in place, wrapping at borders."""
    _, height, width, _ = frames.shape
    half = patch // 2
    ix0 = np.floor(sprite.cx).astype(np.int64) - half  # (T,)
    iy0 = np.floor(sprite.cy).astype(np.int64) - half
    offs = np.arange(patch)
    # Pixel-center offsets from the object center, shape (T, patch).
    dx = (ix0[:, None] + offs[None, :] + 0.5 - sprite.cx[:, None]).astype(np.float32)
    dy = (iy0[:, None] + offs[None, :] + 0.5 - sprite.cy[:, None]).astype(np.float32)
    cos = np.cos(sprite.angle).astype(np.float32)[:, None, None]
    sin = np.sin(sprite.angle).astype(np.float32)[:, None, None]
    dxx = dx[:, None, :]
    dyy = dy[:, :, None]
    # Object-local coordinates: rotate the offsets by -angle.
    lx = cos * dxx + sin * dyy  # (T, patch, patch)
    ly = -sin * dxx + cos * dyy
    rho = np.sqrt(lx * lx + ly * ly)
    r_px = (sprite.radius * sprite.scale).astype(np.float32)  # (T,)
    # Only pixels near the object are shaded: first the bounding circle, then the outline.
    ti, pi, pj = np.nonzero(rho < r_px[:, None, None] + 1.0)
    lx, ly, rho = lx[ti, pi, pj], ly[ti, pi, pj], rho[ti, pi, pj]
    inside = sprite.shape.radius(np.arctan2(ly, lx)).astype(np.float32) * r_px[ti] - rho
    keep = inside > -0.5
    ti, pi, pj, lx, ly, inside = ti[keep], pi[keep], pj[keep], lx[keep], ly[keep], inside[keep]
    alpha = np.minimum(inside + 0.5, 1.0)[:, None]  # anti-aliased edge
    k = (sprite.tex_density / sprite.scale).astype(np.float32)[ti]
    color = _sample_periodic(
        sprite.texture, ly * k + sprite.tex_offset[0], lx * k + sprite.tex_offset[1]
    )
    if rim:
        color *= (0.55 + 0.45 * np.clip(inside / 2.0, 0.0, 1.0))[:, None]
    rows = (iy0[ti] + pi) % height
    cols = (ix0[ti] + pj) % width
    flat = frames.reshape(-1, frames.shape[-1])  # a view: frames is contiguous
    index = (ti * height + rows) * width + cols  # unique as patch <= height, width
    under = flat[index]
    flat[index] = under + (color - under) * alpha


def _draw_sprites(frames: np.ndarray, sprites: Sequence[_Sprite]) -> None:
    """Draw ``sprites`` into ``frames`` (T, H, W, 3) in order, each with a rim, in a square
    window that holds it at its largest scale."""
    _, height, width, _ = frames.shape
    for sprite in sprites:
        patch = math.ceil(2.0 * sprite.radius * float(sprite.scale.max())) + 4
        _draw_sprite(frames, sprite, min(patch, height, width), rim=True)


def _wobble(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """A smooth, zero-mean, time-reversible wobble (two sinusoids with random phases)."""
    out = np.zeros_like(t)
    for _ in range(2):
        amp = float(rng.uniform(0.0, amplitude))
        freq = float(rng.uniform(0.05, 0.25))
        phase = float(rng.uniform(0.0, 2.0 * math.pi))
        out += amp * np.sin(freq * t + phase)
    return out


def _distractors(spec: SyntheticSpec, rng: np.random.Generator, t: np.ndarray) -> list[_Sprite]:
    """The distractors of one video: smaller objects drifting and spinning in random directions.

    ``MAX_DISTRACTORS`` are always drawn, so that the number of random draws does not depend on
    ``spec.max_distractors``; the first ``min(2, most) .. most`` of them (``most`` =
    ``spec.max_distractors``, the count drawn too) are returned, to be drawn into the frames.
    """
    height, width = spec.height, spec.width
    size = float(min(height, width))
    most = spec.max_distractors
    num_distractors = int(rng.integers(min(2, most), most + 1))
    distractors = []
    for _ in range(MAX_DISTRACTORS):
        tex = _texture(rng, TEXTURE_SIZE, TEXTURE_SIZE, vivid=True)
        shape = _Shape.draw(rng)
        radius = _uniform(rng, DISTRACTOR_RADIUS) * size
        direction = rng.uniform(0.0, 2.0 * math.pi)
        speed = _uniform(rng, DISTRACTOR_SPEED) * size
        spin = math.radians(rng.uniform(-DISTRACTOR_SPIN, DISTRACTOR_SPIN))
        x0, y0 = rng.uniform(0.0, width), rng.uniform(0.0, height)
        angle0 = rng.uniform(0.0, 2.0 * math.pi)
        tex_density = _uniform(rng, (0.5, 1.0)) * TEXTURE_SIZE / (2.0 * radius)
        tex_offset = (float(rng.uniform(0, TEXTURE_SIZE)), float(rng.uniform(0, TEXTURE_SIZE)))
        sprite = _Sprite(
            texture=tex,
            shape=shape,
            radius=radius,
            tex_density=tex_density,
            tex_offset=tex_offset,
            cx=x0 + math.cos(direction) * speed * t,
            cy=y0 + math.sin(direction) * speed * t,
            angle=angle0 + spin * t,
            scale=np.ones_like(t),
        )
        distractors.append(sprite)
    return distractors[:num_distractors]


def _finish(frames: np.ndarray, rng: np.random.Generator, noise_sigma: float) -> np.ndarray:
    """Add mild luminance noise (independent per pixel and frame) and quantize to uint8."""
    noise = rng.standard_normal((*frames.shape[:3], 1), dtype=np.float32)
    frames += noise * np.float32(noise_sigma)
    return np.clip(frames + 0.5, 0.0, 255.0).astype(np.uint8)


def render_video(spec: SyntheticSpec, label: int, rng: np.random.Generator) -> np.ndarray:
    """Render one video of class ``label`` as a (T, H, W, 3) uint8 array.

    Pure function: the result depends only on ``spec`` (its scene, frame count, size and the
    motion / distractor / pan factors; the seed is not used here) and on the state of ``rng``.
    All random draws are made in the same order for every label, so for the same generator
    state the odd label of a pair is exactly the even label played backwards:
    ``render_video(spec, 2k + 1, rng1)`` equals ``render_video(spec, 2k, rng2)[::-1]`` when
    ``rng1`` and ``rng2`` are in the same state.

    Args:
        spec: data set parameters (the scene, frame count, size and the motion, distractor and
            pan factors are used).
        label: class index in ``0 .. spec.num_classes - 1``.
        rng: random generator; it is advanced.

    Returns:
        The frames, RGB, uint8, shape ``(spec.num_frames, spec.height, spec.width, 3)``.
    """
    if not 0 <= int(label) < spec.num_classes:
        raise ValueError(f"label must be in 0..{spec.num_classes - 1}, got {label}")
    video, _ = _render(spec, label, rng, pixels=True)
    assert video is not None
    return video


def _render(
    spec: SyntheticSpec, label: int, rng: np.random.Generator, *, pixels: bool
) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Body of :func:`render_video`; also returns the main object's per-frame state.

    The state (``x``, ``y`` in pixels, wrapped into the frame; ``angle`` in radians in
    ``[0, 2*pi)``; ``scale``) is in the returned video's time order. With ``pixels=False``
    the same random draws are made but no pixels are computed (the video is ``None``). The
    ``drift`` scene is :func:`_render_drift`.
    """
    if spec.scene == "drift":
        return _render_drift(spec, label, rng, pixels=pixels)
    num_t, height, width = spec.num_frames, spec.height, spec.width
    size = float(min(height, width))
    t = np.arange(num_t, dtype=np.float64)

    # Background: a periodic texture panning in a uniformly random direction.
    bg_tex = _texture(rng, height, width, vivid=False)
    pan_dir = rng.uniform(0.0, 2.0 * math.pi)
    pan_speed = _uniform(rng, PAN_SPEED) * size * spec.background_pan
    pan_y0, pan_x0 = rng.uniform(0.0, height), rng.uniform(0.0, width)
    ty = pan_y0 + math.sin(pan_dir) * pan_speed * t
    tx = pan_x0 + math.cos(pan_dir) * pan_speed * t
    frames = _pan(bg_tex, ty, tx) if pixels else None  # (T, H, W, 3) float32

    distractors = _distractors(spec, rng, t)

    # Main object. Every parameter, the class-specific speeds included, is drawn for every
    # label; the label only decides which of them drive the motion.
    tex = _texture(rng, TEXTURE_SIZE, TEXTURE_SIZE, vivid=True)
    shape = _Shape.draw(rng)
    radius = _uniform(rng, MAIN_RADIUS) * size
    tex_density = _uniform(rng, (0.7, 1.2)) * TEXTURE_SIZE / (2.0 * radius)
    tex_offset = (float(rng.uniform(0, TEXTURE_SIZE)), float(rng.uniform(0, TEXTURE_SIZE)))
    x0, y0 = rng.uniform(0.0, width), rng.uniform(0.0, height)
    angle0 = rng.uniform(0.0, 2.0 * math.pi)
    log_lo, log_hi = math.log(SCALE_RANGE[0]), math.log(SCALE_RANGE[1])
    log_s0 = rng.uniform(log_lo, log_hi)
    move = _uniform(rng, MOVE_SPEED) * size * spec.motion_speed
    rotate = math.radians(_uniform(rng, ROTATE_SPEED)) * spec.motion_speed
    grow = _uniform(rng, GROW_SPEED) * spec.motion_speed
    cx = x0 + _wobble(rng, t, 0.01 * size)
    cy = y0 + _wobble(rng, t, 0.01 * size)
    angle = angle0 + _wobble(rng, t, math.radians(2.5))
    log_s = np.full_like(t, log_s0)  # no wobble: it would flicker across the wrap point
    noise_sigma = _uniform(rng, NOISE_SIGMA)

    pair = int(label) // 2  # canonical (even) motion; odd labels are played backwards below
    if pair == 0:
        cx = cx - move * t  # move_left
    elif pair == 1:
        cy = cy - move * t  # move_up (image y points down)
    elif pair == 2:
        angle = angle + rotate * t  # clockwise on screen (image y points down)
    else:
        log_s = log_s + grow * t  # grow
    # The log scale lives on a circle too (sawtooth): it stays uniformly distributed.
    log_s = log_lo + np.mod(log_s - log_lo, log_hi - log_lo)
    main_sprite = _Sprite(
        texture=tex,
        shape=shape,
        radius=radius,
        tex_density=tex_density,
        tex_offset=tex_offset,
        cx=cx,
        cy=cy,
        angle=angle,
        scale=np.exp(log_s),
    )

    order = slice(None, None, -1) if int(label) % 2 == 1 else slice(None)
    state = {
        "x": np.mod(cx, width)[order],
        "y": np.mod(cy, height)[order],
        "angle": np.mod(angle, 2.0 * math.pi)[order],
        "scale": main_sprite.scale[order],
    }
    if frames is None:
        return None, state
    _draw_sprites(frames, [*distractors, main_sprite])

    video = _finish(frames, rng, noise_sigma)
    return np.ascontiguousarray(video[order]), state


def _render_drift(
    spec: SyntheticSpec, label: int, rng: np.random.Generator, *, pixels: bool
) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """:func:`_render` of the ``drift`` scene: the frame-sized texture slides in the label's
    direction; the state is the texture's offset (``x``, ``y`` in pixels, wrapped)."""
    num_t, height, width = spec.num_frames, spec.height, spec.width
    size = float(min(height, width))
    t = np.arange(num_t, dtype=np.float64)
    tex = _texture(rng, height, width, vivid=True)
    speed = _uniform(rng, DRIFT_SPEED) * size * spec.motion_speed
    y0, x0 = rng.uniform(0.0, height), rng.uniform(0.0, width)
    distractors = _distractors(spec, rng, t)
    noise_sigma = _uniform(rng, NOISE_SIGMA)

    # Frame t shows the texture at offset (ty, tx): content moves by minus the offset's motion.
    dx, dy = _DRIFT_DIRECTIONS[int(label) // 2]
    tx = x0 - dx * speed * t
    ty = y0 - dy * speed * t
    order = slice(None, None, -1) if int(label) % 2 == 1 else slice(None)
    state = {"x": np.mod(tx, width)[order], "y": np.mod(ty, height)[order]}
    if not pixels:
        return None, state
    frames = _pan(tex, ty, tx)
    _draw_sprites(frames, distractors)
    video = _finish(frames, rng, noise_sigma)
    return np.ascontiguousarray(video[order]), state


# --------------------------------------------------------------------------------------------
# Encoding and the data set on disk
# --------------------------------------------------------------------------------------------


def _video_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The independent random stream of video ``index`` of ``split``."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def _video_plan(spec: SyntheticSpec, split: str) -> list[tuple[str, int, int, str]]:
    """(split, index, label, relative path) for every video of ``split``, in list order.

    Labels are interleaved (``index % num_classes``) and the container alternates per round
    (``(index // num_classes) % 2``), so every class gets both codecs in equal measure and the
    container says nothing about the label.
    """
    per_class = spec.train_per_class if split == "train" else spec.val_per_class
    plan = []
    for index in range(per_class * spec.num_classes):
        label = index % spec.num_classes
        ext = CONTAINERS[(index // spec.num_classes) % len(CONTAINERS)][0]
        plan.append((split, index, label, f"videos/{split}/{index:06d}.{ext}"))
    return plan


def _encode(frames: np.ndarray, path: Path, fps: int) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames to ``path`` (.mp4: H.264, .webm: VP9)."""
    import av  # imported lazily: rendering does not need it

    ext = path.suffix.lstrip(".")
    codec, options = next((c, o) for e, c, o in CONTAINERS if e == ext)
    with av.open(str(path), mode="w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=fps, options=dict(options))
        stream.width = int(frames.shape[2])
        stream.height = int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _make_one(
    spec: SyntheticSpec, tmp_root: Path, split: str, index: int, label: int, rel: str
) -> int:
    """Render and encode one video into ``tmp_root``; returns its size in bytes."""
    frames = render_video(spec, label, _video_rng(spec.seed, split, index))
    path = tmp_root / rel
    _encode(frames, path, spec.fps)
    return path.stat().st_size


# The worker processes are fresh interpreters that import PyAV first: when decord is loaded
# before PyAV in a process, its bundled libvpx shadows PyAV's and VP9 encoding fails.
_WORKER_BOOTSTRAP = (
    "import av, sys\nfrom videomae.data.synthetic import _worker_main\nsys.exit(_worker_main())\n"
)


_DONE_MARK = "@synthetic-video-done"


def _worker_main() -> int:
    """Body of a worker process: read a JSON job list on stdin, print ``rel size`` per video."""
    task = json.loads(sys.stdin.read())
    spec = SyntheticSpec(**task["spec"])
    tmp_root = Path(task["tmp_root"])
    for split, index, label, rel in task["jobs"]:
        nbytes = _make_one(spec, tmp_root, split, int(index), int(label), rel)
        print(f"{_DONE_MARK} {rel} {nbytes}", flush=True)
    return 0


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _read_spec(root: Path) -> dict[str, Any] | None:
    """The parsed ``spec.json`` of a complete data set under ``root``, else None."""
    try:
        stored = json.loads((root / _SPEC_NAME).read_text())
    except (OSError, ValueError):
        return None
    names = [*_LIST_NAMES.values(), _LABELS_NAME]
    if not isinstance(stored, dict) or not all((root / n).is_file() for n in names):
        return None
    return stored


def _outputs(root: Path) -> dict[str, Path]:
    return {
        "train": root / _LIST_NAMES["train"],
        "val": root / _LIST_NAMES["val"],
        "labels": root / _LABELS_NAME,
    }


def _check_replaceable(root: Path) -> None:
    """Refuse to delete a directory that does not look like one of our data sets."""
    if not root.exists():
        return
    if not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a directory")
    foreign = sorted(p.name for p in root.iterdir() if p.name not in _OWN_ENTRIES)
    if foreign:
        raise FileExistsError(
            f"{root} holds files that are not part of a synthetic data set ({foreign[:5]}); "
            "refusing to replace it"
        )


def _cleanup_stale(root: Path) -> None:
    """Remove temporary siblings left behind by interrupted generations of dead processes."""
    prefix = f".{root.name}.tmp-"
    if not root.parent.is_dir():
        return
    for entry in root.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        try:
            pid = int(entry.name[len(prefix) :].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _forward_lines(stream: Any, results: queue.Queue[tuple[str, int] | None]) -> None:
    """Forward a worker's ``rel size`` lines to ``results``, then a ``None`` at its end."""
    try:
        for line in stream:
            mark, _, rest = line.strip().partition(" ")
            if mark == _DONE_MARK:
                rel, _, nbytes = rest.rpartition(" ")
                results.put((rel, int(nbytes)))
    finally:
        results.put(None)


def _reap(proc: subprocess.Popen[str]) -> None:
    """Kill a worker process that is still running (interrupted generation) and wait for it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _run_jobs(
    spec: SyntheticSpec, tmp_root: Path, jobs: Sequence[tuple[str, int, int, str]], workers: int
) -> Iterator[tuple[str, int]]:
    """Run ``jobs`` in ``workers`` fresh worker processes; yield (rel path, bytes) as they end."""
    env = dict(os.environ)
    src_dir = str(Path(__file__).resolve().parents[2])  # makes this ``videomae`` importable
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src_dir, env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    num = max(1, min(workers, len(jobs)))
    shards = [list(jobs[i::num]) for i in range(num)]
    results: queue.Queue[tuple[str, int] | None] = queue.Queue()
    with contextlib.ExitStack() as stack:
        procs = []
        for shard in shards:
            err = stack.enter_context(tempfile.TemporaryFile(mode="w+"))
            proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOTSTRAP],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
            stack.callback(_reap, proc)
            procs.append((proc, err))
            reader = threading.Thread(
                target=_forward_lines, args=(proc.stdout, results), daemon=True
            )
            reader.start()
            assert proc.stdin is not None
            task = {"spec": asdict(spec), "tmp_root": str(tmp_root), "jobs": shard}
            with proc.stdin:
                proc.stdin.write(json.dumps(task))
        running = len(procs)
        while running:
            item = results.get()
            if item is None:
                running -= 1
            else:
                yield item
        for proc, err in procs:
            if proc.wait() != 0:
                err.seek(0)
                raise RuntimeError(
                    f"synthetic video worker failed (exit {proc.returncode}):\n"
                    + err.read()[-3000:]
                )


def generate(
    root: str | Path,
    spec: SyntheticSpec,
    *,
    progress: bool = True,
    workers: int = _default_workers(),
) -> dict[str, Path]:
    """Generate the data set described by ``spec`` under ``root``, replacing what is there.

    Everything is written into a temporary sibling directory (``.<name>.tmp-<pid>-<id>``),
    with ``spec.json`` last, and renamed to ``root`` at the end, so an interrupted run never
    leaves a half-written set at ``root``. An existing ``root`` is replaced only if it holds
    nothing but data set files.

    Args:
        root: output directory, e.g. ``data/synthetic``.
        spec: what to generate.
        progress: show a ``rich`` progress bar.
        workers: number of worker processes that render and encode (fresh interpreters).

    Returns:
        ``{"train": train.csv, "val": val.csv, "labels": labels.txt}`` under ``root``.
    """
    if not isinstance(spec, SyntheticSpec):
        raise TypeError(f"spec must be a SyntheticSpec, got {type(spec).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    root = Path(root).absolute()
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    _cleanup_stale(root)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    try:
        plans = {split: _video_plan(spec, split) for split in SPLITS}
        for split in SPLITS:
            (tmp / "videos" / split).mkdir(parents=True)
        jobs = [item for split in SPLITS for item in plans[split]]
        total_bytes, finished = 0, set()
        done = _run_jobs(spec, tmp, jobs, workers)
        for rel, nbytes in _with_progress(done, len(jobs), progress, root):
            total_bytes += nbytes
            finished.add(rel)
        missing = sorted({rel for *_, rel in jobs} - finished)
        if missing:
            raise RuntimeError(f"{len(missing)} synthetic videos were not written: {missing[:3]}")
        for split in SPLITS:
            lines = "".join(f"{rel} {label}\n" for _, _, label, rel in plans[split])
            (tmp / _LIST_NAMES[split]).write_text(lines)
        (tmp / _LABELS_NAME).write_text("".join(f"{n}\n" for n in spec.class_names))
        spec_text = json.dumps(spec.to_dict(), indent=2) + "\n"
        (tmp / _SPEC_NAME).write_text(spec_text)
        _swap_into_place(tmp, root, spec)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - start
    message = (
        f"synthetic data set: {len(jobs)} videos, {total_bytes / 1e6:.1f} MB, "
        f"{elapsed:.1f} s -> {root}"
    )
    _announce(message, logging.INFO, progress)
    return _outputs(root)


def _swap_into_place(tmp: Path, root: Path, spec: SyntheticSpec) -> None:
    """Atomically-ish move the finished ``tmp`` directory to ``root``."""
    old = None
    if root.exists():
        _check_replaceable(root)
        old = root.parent / f".{root.name}.tmp-{os.getpid()}-old-{uuid.uuid4().hex[:8]}"
        os.rename(root, old)
    try:
        os.rename(tmp, root)
    except OSError:
        # Another process finished the same set at the same time: keep theirs if it matches.
        if _read_spec(root) != spec.to_dict():
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _announce(message: str, level: int, progress: bool) -> None:
    """Log ``message``; with ``progress``, also print it when logging shows nothing on the
    console (the command-line tool; inside a run the log already prints it)."""
    logger.log(level, message)
    if progress and not logging.getLogger().hasHandlers():
        _console().print(message)


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _with_progress(
    results: Iterator[tuple[str, int]], total: int, progress: bool, root: Path
) -> Iterator[tuple[str, int]]:
    if not progress:
        yield from results
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_console(), transient=False) as bar:
        task = bar.add_task(f"synthetic videos -> {root.name}", total=total)
        for item in results:
            bar.advance(task)
            yield item


def ensure_synthetic(
    root: str | Path, spec: SyntheticSpec | None = None, *, progress: bool = True
) -> dict[str, Path]:
    """Return the list files of the data set at ``root``, generating it first if needed.

    Nothing is written when ``root`` already holds a complete set (``spec.json`` present and
    equal to ``spec``'s). A set with another spec, or an incomplete one (no ``spec.json``,
    e.g. after an interrupted run), is regenerated.

    Args:
        root: data set directory, e.g. ``data/synthetic``.
        spec: wanted parameters; ``None`` means ``SyntheticSpec()``.
        progress: show a progress bar (and a message) when generating.

    Returns:
        ``{"train": train.csv, "val": val.csv, "labels": labels.txt}`` under ``root``.
    """
    spec = SyntheticSpec() if spec is None else spec
    return _ensure(Path(root), spec, progress=progress, workers=_default_workers(), force=False)


def _ensure(
    root: Path, spec: SyntheticSpec, *, progress: bool, workers: int, force: bool
) -> dict[str, Path]:
    root = root.absolute()
    stored = _read_spec(root)
    if stored == spec.to_dict() and not force:
        return _outputs(root)
    level = logging.WARNING
    if stored is not None:
        same = stored == spec.to_dict()
        reason = f"{root} holds a synthetic set with {'the same' if same else 'another'} spec"
        reason += "; regenerating it" + (" (forced)" if same else "")
    elif root.exists() and any(root.iterdir()):
        reason = f"{root} holds an incomplete synthetic set; regenerating it"
    else:
        reason = f"generating the synthetic data set in {root}"
        level = logging.INFO
    _announce(reason, logging.INFO if progress else level, progress)
    return generate(root, spec, progress=progress, workers=workers)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``python -m videomae.data.synthetic --root data/synthetic``.

    Args:
        argv: arguments without the program name; ``None`` means ``sys.argv[1:]``.

    Returns:
        The process exit status (0 on success).
    """
    defaults = SyntheticSpec()
    parser = argparse.ArgumentParser(
        prog="python -m videomae.data.synthetic",
        description="Generate the synthetic motion-classification video data set.",
    )
    parser.add_argument("--root", default="data/synthetic", help="output directory")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--train-per-class", type=int, default=defaults.train_per_class)
    parser.add_argument("--val-per-class", type=int, default=defaults.val_per_class)
    parser.add_argument("--num-frames", type=int, default=defaults.num_frames)
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--fps", type=int, default=defaults.fps)
    parser.add_argument("--num-classes", type=int, default=defaults.num_classes)
    parser.add_argument(
        "--scene",
        choices=tuple(SCENES),
        default="drift",
        help="drift (the default, as data=synthetic) or objects (harder)",
    )
    parser.add_argument("--motion-speed", type=float, default=defaults.motion_speed)
    parser.add_argument("--max-distractors", type=int, default=defaults.max_distractors)
    parser.add_argument(
        "--background-pan", type=float, default=defaults.background_pan, help="objects only"
    )
    parser.add_argument("--workers", type=int, default=_default_workers())
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--force", action="store_true", help="regenerate even if a matching set exists"
    )
    args = parser.parse_args(argv)
    try:
        spec = SyntheticSpec(
            num_classes=args.num_classes,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            num_frames=args.num_frames,
            height=args.height,
            width=args.width,
            fps=args.fps,
            seed=args.seed,
            motion_speed=args.motion_speed,
            max_distractors=args.max_distractors,
            background_pan=args.background_pan,
            scene=args.scene,
        )
    except ValueError as err:
        parser.error(str(err))
    root = Path(args.root)
    if not args.force and _read_spec(root.absolute()) == spec.to_dict():
        print(f"{root}: up to date (use --force to regenerate)")
    paths = _ensure(
        root, spec, progress=not args.no_progress, workers=args.workers, force=args.force
    )
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
