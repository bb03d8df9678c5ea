"""The pieces every reader shares: safe reading of torch pickles and ``.safetensors`` files,
building a model from constructor arguments and a state dict (shapes checked key by key, missing
and unexpected keys reported, learned position tables resized), and the constructor arguments
inferred from official-named weights (:data:`NUM_HEADS`, :data:`DECODER_NUM_HEADS`).

Reads and writes no format of its own; :mod:`videomae.checkpoints` describes the formats.
"""

from __future__ import annotations

import argparse
import logging
import math
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from videomae.models.classifier import VideoMAEClassifier
from videomae.models.config import DECODER_NUM_HEADS, NUM_HEADS, ModelConfig
from videomae.models.pretrain import VideoMAEPretrain
from videomae.models.vit import sinusoid_table

log = logging.getLogger(__name__)

KINDS = ("pretrain", "classifier")
"""The model kinds: :class:`VideoMAEPretrain` and :class:`VideoMAEClassifier`."""


Model = VideoMAEPretrain | VideoMAEClassifier


# ---------------------------------------------------------------------------- safe reading
def _torch_load(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers; refuses code-running pickles."""
    try:
        # official training checkpoints store their argparse options beside the weights: a
        # Namespace is plain data and allowed; every other non-tensor global is refused
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"refused to load {path}: unpickling it would run code or build arbitrary objects "
            f"(only tensors and plain containers are accepted; torch.load weights_only=True). "
            f"PyTorch: {str(error).splitlines()[0]}"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"cannot read {path} as a PyTorch checkpoint: {error}") from error


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (no code runs)."""
    try:
        from safetensors.torch import load_file
    except ImportError as error:  # pragma: no cover - safetensors comes with transformers
        raise ImportError("reading .safetensors files needs the safetensors package") from error
    return load_file(str(path), device="cpu")


def _write_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors (contiguous copies, no shared storage) to ``path``."""
    try:
        from safetensors.torch import save_file
    except ImportError as error:  # pragma: no cover
        raise ImportError("writing .safetensors files needs the safetensors package") from error
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


# ---------------------------------------------------------------------------- building
def _model_class(kind: str) -> type[Model]:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return VideoMAEPretrain if kind == "pretrain" else VideoMAEClassifier


def _normalize_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """JSON round trips turn ``img_size`` tuples into lists; turn them back."""
    config = dict(config)
    if isinstance(config.get("img_size"), list):
        config["img_size"] = tuple(config["img_size"])
    return config


def _grid(config: Mapping[str, Any]) -> tuple[int, int, int]:
    """The token grid ``(T', H', W')`` of constructor arguments (defaults where unset)."""
    geometry = ("img_size", "num_frames", "patch_size", "tubelet_size")
    return ModelConfig.from_dict({k: config[k] for k in geometry if k in config}).grid_size


def _source_grid(num_tokens: int, config: Mapping[str, Any]) -> tuple[int, int, int]:
    """Guess the grid of a stored learned ``pos_embed`` of ``num_tokens`` tokens."""
    tubelet = config.get("tubelet_size", 2)
    candidates = [_grid(config)[0], 16 // tubelet, 8 // tubelet]
    for frames in candidates:
        if frames > 0 and num_tokens % frames == 0:
            side = math.isqrt(num_tokens // frames)
            if side * side == num_tokens // frames:
                return frames, side, side
    raise ValueError(
        f"cannot infer the grid of a learned pos_embed with {num_tokens} tokens; pass num_frames "
        f"and img_size of the checkpoint's model"
    )


def resize_pos_embed(
    pos_embed: torch.Tensor, source: tuple[int, int, int], target: tuple[int, int, int]
) -> torch.Tensor:
    """Trilinear resize of a ``(1, T'*H'*W', D)`` position table from grid ``source`` to
    ``target`` (interpolated over ``(T', H', W')``)."""
    if tuple(source) == tuple(target):
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, *source, dim).permute(0, 4, 1, 2, 3).float()
    grid = F.interpolate(grid, size=tuple(target), mode="trilinear", align_corners=False)
    return grid.permute(0, 2, 3, 4, 1).reshape(1, math.prod(target), dim).to(pos_embed.dtype)


def _prepare_pos_embed(
    state: dict[str, torch.Tensor],
    key: str,
    config: dict[str, Any],
    source_config: Mapping[str, Any] | None,
    kind: str,
) -> None:
    """Drop a stored sinusoidal table, or keep (and resize) a learned one, in place.

    Sets ``config["learnable_pos_embed"]`` for classifiers when the checkpoint has a learned table.
    """
    table = state.get(key)
    if table is None:
        return
    table = table.float()
    if table.ndim == 2:
        table = table[None]
    if torch.allclose(table, sinusoid_table(table.shape[1], table.shape[2]), atol=1e-4):
        del state[key]  # the fixed table: rebuilt for the model's own grid
        return
    if kind == "pretrain":
        raise ValueError(
            f"{key} is a learned position table; VideoMAEPretrain supports the sinusoidal one only"
        )
    config["learnable_pos_embed"] = True
    source = _grid(source_config) if source_config else _source_grid(table.shape[1], config)
    if math.prod(source) != table.shape[1]:
        source = _source_grid(table.shape[1], config)
    state[key] = resize_pos_embed(table, source, _grid(config))


def check_shapes(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    origin: str,
    where: str = "the model",
) -> None:
    """Raise ``ValueError`` naming the first key of ``state`` whose shape differs in ``expected``.

    Keys that only one side has are not checked here (the callers report them).
    """
    for key, tensor in state.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"{origin}: {key} has shape {tuple(tensor.shape)} in the checkpoint but "
                f"{tuple(expected[key].shape)} in {where}"
            )


def _load_into(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    origin: str,
    allow_missing: tuple[str, ...] = (),
) -> None:
    """Copy ``state`` into ``model``: shapes checked per key, missing/unexpected keys reported."""
    expected = model.state_dict()
    check_shapes(
        state,
        expected,
        origin,
        where="the model (check the size overrides, e.g. num_frames, img_size, num_classes, "
        "embed_dim)",
    )
    missing = [k for k in expected if k not in state and not k.startswith(allow_missing)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{origin}: the weights do not fit a {type(model).__name__}; "
            f"missing keys: {missing or 'none'}; unexpected keys: {unexpected or 'none'}"
        )
    model.load_state_dict(dict(state), strict=False)
    fresh = [k for k in expected if k not in state]
    if fresh:
        # the caller reports them (``fresh_keys``), knowing which of them its model keeps
        log.debug("%s: not in the checkpoint, left at their initialization: %s", origin, fresh)
    # the names a caller copying these weights elsewhere must not take from the file
    model.fresh_keys = fresh


def _build(
    kind: str,
    config: Mapping[str, Any],
    state: dict[str, torch.Tensor],
    origin: str,
    overrides: Mapping[str, Any],
    source_config: Mapping[str, Any] | None = None,
    allow_missing: tuple[str, ...] = (),
) -> Model:
    """Construct a ``kind`` model from ``config`` + ``overrides`` and load ``state`` into it."""
    if kind == "classifier":  # arguments of the pretraining network only
        overrides = {
            k: v
            for k, v in overrides.items()
            if not k.startswith("decoder_") and k != "normalize_target"
        }
        # a new number of classes: the stored head does not fit, a fresh one is made (as the
        # official fine-tuning code does when it starts from another data set's checkpoint)
        head = state.get("head.weight")
        wanted = overrides.get("num_classes")
        if head is not None and wanted is not None and head.shape[0] != wanted:
            log.warning(
                "%s: head has %d classes, num_classes=%d: the head is re-initialized",
                origin,
                head.shape[0],
                wanted,
            )
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
            allow_missing = (*allow_missing, "head.")
    config = _normalize_config({**config, **overrides})
    key = "pos_embed" if kind == "classifier" else "encoder.pos_embed"
    _prepare_pos_embed(state, key, config, source_config, kind)
    try:
        model = _model_class(kind)(**config)
    except TypeError as error:
        raise ValueError(f"{origin}: bad model arguments: {error}") from error
    _load_into(model, state, origin, allow_missing)
    return model


# ---------------------------------------------------------------------------- config inference
def _block_count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}blocks\.(\d+)\.")
    indices = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(indices) + 1 if indices else 0


def _heads(table: dict[int, int], dim: int, name: str) -> int:
    if dim not in table:
        raise ValueError(
            f"cannot infer {name} for width {dim} (known widths: {sorted(table)}); "
            f"pass {name}=... as an override"
        )
    return table[dim]


def _infer_encoder(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, Any]:
    """Encoder constructor arguments read off official-named weights under ``prefix``."""
    key = f"{prefix}patch_embed.proj.weight"
    if key not in state:
        raise ValueError(f"no {key} in the checkpoint: not a VideoMAE model")
    embed_dim, in_chans, tubelet, patch, _ = state[key].shape
    config: dict[str, Any] = {
        "embed_dim": embed_dim,
        "in_chans": in_chans,
        "tubelet_size": tubelet,
        "patch_size": patch,
        "depth": _block_count(state, prefix),
        "qkv_bias": f"{prefix}blocks.0.attn.q_bias" in state,
    }
    fc1 = state.get(f"{prefix}blocks.0.mlp.fc1.weight")
    if fc1 is not None:
        config["mlp_ratio"] = fc1.shape[0] / embed_dim
    if f"{prefix}blocks.0.gamma_1" in state:
        config["init_values"] = 0.1  # any positive value creates gamma_1/gamma_2 (overwritten)
    return config


def _infer_config(
    state: Mapping[str, torch.Tensor],
    kind: str,
    overrides: Mapping[str, Any],
    with_decoder: bool = True,
) -> dict[str, Any]:
    """Constructor arguments of a ``kind`` model from official-named weights (the decoder's
    only when ``with_decoder``: a pretraining checkpoint read for its encoder needs none)."""
    prefix = "encoder." if kind == "pretrain" else ""
    config = _infer_encoder(state, prefix)
    if "num_heads" not in overrides:
        config["num_heads"] = _heads(NUM_HEADS, config["embed_dim"], "num_heads")
    if kind == "pretrain" and with_decoder:
        dec_dim = state["mask_token"].shape[-1]
        config["decoder_embed_dim"] = dec_dim
        config["decoder_depth"] = _block_count(state, "decoder.")
        if "decoder_num_heads" not in overrides:
            config["decoder_num_heads"] = _heads(DECODER_NUM_HEADS, dec_dim, "decoder_num_heads")
    else:
        head = state.get("head.weight")
        config["num_classes"] = head.shape[0] if head is not None else 0
        config["use_mean_pooling"] = "norm.weight" not in state
        if config["use_mean_pooling"] and head is not None and "fc_norm.weight" not in state:
            config["use_fc_norm"] = False  # our classifier built with use_fc_norm=False
    return config


def model_kind(model: nn.Module) -> str:
    """``"pretrain"`` or ``"classifier"``; TypeError for other modules."""
    if isinstance(model, VideoMAEPretrain):
        return "pretrain"
    if isinstance(model, VideoMAEClassifier):
        return "classifier"
    raise TypeError(
        f"expected a VideoMAEPretrain or VideoMAEClassifier, got {type(model).__name__}"
    )
