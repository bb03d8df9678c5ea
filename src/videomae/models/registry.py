"""Networks of a named size: :func:`create_pretrain`, :func:`create_classifier`.

Sizes (:data:`videomae.models.config.SIZES`): ``tiny`` (CPU tests), ``vit_s``, ``vit_b``,
``vit_l``, ``vit_h``, ``vit_g``. The clip geometry (``img_size``, ``num_frames``,
``tubelet_size``) is not a backbone size: it comes from the data and backbone configs as
constructor overrides.
"""

from __future__ import annotations

from typing import Any

from videomae.models.classifier import VideoMAEClassifier
from videomae.models.config import SIZES, BackboneSize
from videomae.models.pretrain import VideoMAEPretrain

__all__ = ["SIZES", "BackboneSize", "create_classifier", "create_pretrain", "get_size"]


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
