"""Models: ``nn.Module``s only (no Lightning, no I/O, nothing from ``videomae.data``).

- :mod:`~videomae.models.vit`: tubelet embedding, sinusoidal table, attention, blocks, encoder.
- :mod:`~videomae.models.masking`: tube, random, running-cell and dual mask generators.
- :mod:`~videomae.models.pretrain`: the masked-autoencoder pretraining network.
- :mod:`~videomae.models.classifier`: the fine-tuning (video classification) network.
- :mod:`~videomae.models.registry`: named backbone sizes.

:func:`load` reads a checkpoint of any supported format; it imports :mod:`videomae.checkpoints`
(the I/O) only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from videomae.models.classifier import VideoMAEClassifier
from videomae.models.masking import (
    DualMasking,
    MaskPair,
    RandomMasking,
    RunningCellMasking,
    TubeMasking,
    split_mask,
)
from videomae.models.pretrain import PretrainDecoder, VideoMAEPretrain
from videomae.models.registry import (
    SIZES,
    BackboneSize,
    create_classifier,
    create_pretrain,
    get_size,
)
from videomae.models.vit import (
    ATTENTION_BACKENDS,
    Attention,
    Block,
    DropPath,
    Mlp,
    PatchEmbed,
    VisionTransformerEncoder,
    VisionTransformerTrunk,
    sinusoid_table,
)


def load(path: str | Path, *, kind: str | None = None, **overrides: Any) -> nn.Module:
    """Load a model from an official, HF, Lightning or portable checkpoint.

    A thin wrapper of :func:`videomae.checkpoints.load` (see there), imported on call so that
    ``videomae.models`` stays free of I/O.
    """
    from videomae.checkpoints import load as load_checkpoint

    return load_checkpoint(path, kind=kind, **overrides)


__all__ = [
    "ATTENTION_BACKENDS",
    "SIZES",
    "Attention",
    "BackboneSize",
    "Block",
    "DropPath",
    "DualMasking",
    "MaskPair",
    "Mlp",
    "PatchEmbed",
    "PretrainDecoder",
    "RandomMasking",
    "RunningCellMasking",
    "TubeMasking",
    "VideoMAEClassifier",
    "VideoMAEPretrain",
    "VisionTransformerEncoder",
    "VisionTransformerTrunk",
    "create_classifier",
    "create_pretrain",
    "get_size",
    "load",
    "sinusoid_table",
    "split_mask",
]
