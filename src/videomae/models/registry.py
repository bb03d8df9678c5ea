"""Named backbone sizes (constructor arguments of the models).

Sizes: ``tiny`` (CPU tests), ``vit_s``, ``vit_b``, ``vit_l``, ``vit_h``, ``vit_g``.

The numbers are those of the official VideoMAE (V1: S/B/L/H) and VideoMAE V2 (g) pretraining
models; the Hydra ``backbone`` configs repeat them and a test keeps the two equal. The clip
geometry (``img_size``, ``num_frames``, ``tubelet_size``) is not a backbone size: it comes from the
data and backbone configs as constructor overrides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from videomae.models.classifier import VideoMAEClassifier
from videomae.models.pretrain import VideoMAEPretrain


@dataclass(frozen=True)
class BackboneSize:
    """Encoder and decoder sizes of one named backbone (constructor arguments of the models)."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    patch_size: int
    decoder_embed_dim: int
    decoder_depth: int
    decoder_num_heads: int

    def as_kwargs(self) -> dict[str, Any]:
        """The sizes as keyword arguments of :class:`VideoMAEPretrain`."""
        return asdict(self)

    def encoder_kwargs(self) -> dict[str, Any]:
        """The encoder sizes only (no ``decoder_*``): keyword arguments of
        :class:`VideoMAEClassifier`."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("decoder_")}


SIZES: dict[str, BackboneSize] = {
    # A CPU-test size: a few seconds per step on 2 cores at 96 px, 16 frames.
    "tiny": BackboneSize(192, 4, 3, 4.0, 16, 96, 2, 3),
    "vit_s": BackboneSize(384, 12, 6, 4.0, 16, 192, 4, 3),
    "vit_b": BackboneSize(768, 12, 12, 4.0, 16, 384, 4, 6),
    "vit_l": BackboneSize(1024, 24, 16, 4.0, 16, 512, 12, 8),
    "vit_h": BackboneSize(1280, 32, 16, 4.0, 16, 640, 12, 8),
    # VideoMAE V2 giant: patch 14, MLP hidden int(1408 * 48 / 11) = 6144.
    "vit_g": BackboneSize(1408, 40, 16, 48 / 11, 14, 512, 4, 8),
}
"""The named sizes."""


def get_size(name: str) -> BackboneSize:
    """The sizes named ``name``; KeyError listing the known names otherwise."""
    try:
        return SIZES[name]
    except KeyError:
        raise KeyError(f"unknown backbone size {name!r}; known sizes: {', '.join(SIZES)}") from None


def create_pretrain(name: str, **overrides: Any) -> VideoMAEPretrain:
    """A :class:`VideoMAEPretrain` of size ``name``; ``overrides`` replace or add constructor args.

    Example: ``create_pretrain("tiny", img_size=96, num_frames=16, tubelet_size=2)``.
    """
    return VideoMAEPretrain(**{**get_size(name).as_kwargs(), **overrides})


def create_classifier(name: str, num_classes: int, **overrides: Any) -> VideoMAEClassifier:
    """A :class:`VideoMAEClassifier` of size ``name``; ``overrides`` replace or add constructor
    args.

    Example: ``create_classifier("vit_b", 174, num_frames=16, drop_path_rate=0.1)``.
    """
    kwargs = {**get_size(name).encoder_kwargs(), **overrides}
    return VideoMAEClassifier(num_classes=num_classes, **kwargs)
