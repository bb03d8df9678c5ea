"""Models: ``nn.Module``s only (no Lightning, no I/O, nothing from ``videomae.data``).

- :mod:`~videomae.models.config`: the typed model configs and the named sizes (no torch).
- :mod:`~videomae.models.vit`: tubelet embedding, sinusoidal table, attention, blocks, encoder.
- :mod:`~videomae.models.masking`: tube, random, running-cell and dual mask generators.
- :mod:`~videomae.models.pretrain`: the masked-autoencoder pretraining network.
- :mod:`~videomae.models.classifier`: the fine-tuning (video classification) network.
- :mod:`~videomae.models.registry`: networks of a named size.

The names below are imported on first use, so that ``videomae.models.config`` loads without
torch. :func:`load` reads a checkpoint of any supported format; it imports
:mod:`videomae.checkpoints` (the I/O) only when called.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

_HOMES = {
    "ClassifierConfig": "config",
    "ModelConfig": "config",
    "PretrainConfig": "config",
    "SIZES": "config",
    "BackboneSize": "config",
    "VideoMAEClassifier": "classifier",
    "DualMasking": "masking",
    "MaskPair": "masking",
    "RandomMasking": "masking",
    "RunningCellMasking": "masking",
    "TubeMasking": "masking",
    "split_mask": "masking",
    "PretrainDecoder": "pretrain",
    "VideoMAEPretrain": "pretrain",
    "create_classifier": "registry",
    "create_pretrain": "registry",
    "get_size": "registry",
    "ATTENTION_BACKENDS": "vit",
    "Attention": "vit",
    "Block": "vit",
    "DropPath": "vit",
    "Mlp": "vit",
    "PatchEmbed": "vit",
    "VisionTransformerEncoder": "vit",
    "VisionTransformerTrunk": "vit",
    "sinusoid_table": "vit",
}
"""Public name -> the submodule that defines it."""


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


def load(path: str | Path, *, kind: str | None = None, **overrides: Any) -> Any:
    """Load a model from an official, HF, Lightning or portable checkpoint.

    A thin wrapper of :func:`videomae.checkpoints.load` (see there), imported on call so that
    ``videomae.models`` stays free of I/O.
    """
    from videomae.checkpoints import load as load_checkpoint

    return load_checkpoint(path, kind=kind, **overrides)


__all__ = sorted([*_HOMES, "load"])
