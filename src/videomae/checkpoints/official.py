"""Reads official VideoMAE / VideoMAE V2 checkpoints (``.pth``/``.pt``/``.bin``).

The weights are under ``model`` or ``module`` or at the top level, keys possibly prefixed
``module.``, ``encoder.`` or ``backbone.``; known harmless extras are dropped. A pretraining
checkpoint gives a :class:`~videomae.models.pretrain.VideoMAEPretrain` (or, as
``kind="classifier"``, a classifier with its encoder and a fresh head), a fine-tuning one a
:class:`~videomae.models.classifier.VideoMAEClassifier`; the sizes are inferred from the weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from videomae.checkpoints.build import Model, _build, _infer_config

log = logging.getLogger(__name__)


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


def _unwrap(checkpoint: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict of an official checkpoint: under ``model``, ``module`` or at the top."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path}: expected a dict of weights, got {type(checkpoint).__name__}")
    for key in ("model", "module", "state_dict"):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(f"{path}: no tensors found (looked under 'model', 'module', top level)")
    return _strip(state, "module.")


_HARMLESS = ("encoder.head.", "head_dist.", "encoder.fc_norm.")
"""Extras of official checkpoints that our models do not have and that change nothing
(``encoder.head`` is an Identity-sized placeholder in the official pretraining encoder)."""


def _load_official(
    checkpoint: Any, path: Path, kind: str | None, overrides: Mapping[str, Any]
) -> Model:
    """Build a model from an official VideoMAE / V2 state dict."""
    state = _unwrap(checkpoint, path)
    is_pretrain = "mask_token" in state and any(k.startswith("decoder.") for k in state)
    allow_missing: tuple[str, ...] = ()
    if is_pretrain:
        state = {k: v for k, v in state.items() if not k.startswith(_HARMLESS)}
        target = kind or "pretrain"
        config = _infer_config(state, "pretrain", overrides, with_decoder=target == "pretrain")
        if target == "classifier":  # fine-tuning init: the encoder, a fresh head and fc_norm
            dropped = {k.split(".")[0] for k in state if not k.startswith("encoder.")}
            if any(k.startswith("encoder.norm.") for k in state):
                dropped.add("encoder.norm")  # mean pooling + a fresh fc_norm replace it
            log.info("%s: the encoder is used; dropped: %s", path, ", ".join(sorted(dropped)))
            state = {
                k[len("encoder.") :]: v
                for k, v in state.items()
                if k.startswith("encoder.") and not k.startswith("encoder.norm.")
            }
            config = {k: v for k, v in config.items() if not k.startswith("decoder_")}
            config.update(use_mean_pooling=True, num_classes=0)
            allow_missing = ("head.", "fc_norm.")
    else:
        if kind == "pretrain":
            raise ValueError(
                f"{path}: a fine-tuning checkpoint (no decoder) cannot give kind=pretrain"
            )
        for prefix in ("encoder.", "backbone."):
            state = _strip(state, prefix)
        state = {k: v for k, v in state.items() if not k.startswith("head_dist.")}
        if "head.weight" not in state and kind != "classifier":
            raise ValueError(
                f"{path}: neither a pretraining checkpoint (encoder.*, decoder.*, mask_token) "
                f"nor a fine-tuning one (head.weight); pass kind='classifier' and num_classes "
                f"to load an encoder alone"
            )
        config = _infer_config(state, "classifier", overrides)
        target = "classifier"
        if "head.weight" not in state:
            allow_missing = ("head.", "fc_norm.")
    return _build(target, config, state, str(path), overrides, allow_missing=allow_missing)
