"""Reads and writes our portable format: ``.safetensors`` (the state dict) + a sibling ``.json``
``{"kind": ..., "config": {...}}`` (the constructor arguments).

:func:`_load_ours` builds a model from a stored ``kind``, ``config`` and state dict; the
Lightning reader (:mod:`videomae.checkpoints.lightning`) uses it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from videomae.checkpoints.build import (
    Model,
    _build,
    _normalize_config,
    _read_safetensors,
    _write_safetensors,
    model_kind,
)
from videomae.checkpoints.official import _load_official


def _load_ours(
    kind: str,
    config: Mapping[str, Any],
    state: dict[str, torch.Tensor],
    origin: str,
    requested: str | None,
    overrides: Mapping[str, Any],
) -> Model:
    config = _normalize_config(config)
    if kind == "pretrain" and requested == "classifier":  # fine-tuning init from our pretraining
        keep = ("img_size", "num_frames", "num_heads", "norm_eps", "attention")
        geometry = {k: config[k] for k in keep if k in config}
        return _load_official(
            {"model": state}, Path(origin), "classifier", {**geometry, **overrides}
        )
    if requested is not None and requested != kind:
        raise ValueError(f"{origin} holds a {kind} model, not {requested}")
    return _build(kind, config, state, origin, overrides, source_config=config)


def _load_portable(path: Path, kind: str | None, overrides: Mapping[str, Any]) -> Model:
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        raise ValueError(f"{path}: the portable format needs {meta_path.name} beside it")
    meta = json.loads(meta_path.read_text())
    if not isinstance(meta, dict) or "kind" not in meta or "config" not in meta:
        raise ValueError(f"{meta_path}: expected {{'kind': ..., 'config': {{...}}}}")
    state = _read_safetensors(path)
    return _load_ours(meta["kind"], meta["config"], state, str(path), kind, overrides)


def save_portable(model: Model, path: str | Path) -> Path:
    """Write ``path`` (``.safetensors``, the state dict) and ``path.with_suffix(".json")``
    (``{"kind": ..., "config": {...}}``, the constructor arguments). Returns ``path``."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"the portable file must end in .safetensors, got {path.name}")
    kind = model_kind(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_safetensors(model.state_dict(), path)
    meta = {"format": "videomae-portable", "version": 1, "kind": kind, "config": dict(model.config)}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path
