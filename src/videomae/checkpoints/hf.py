"""Reads and writes HF transformers VideoMAE directories (``config.json`` +
``model.safetensors`` or ``pytorch_model.bin``; ``VideoMAEForPreTraining`` or
``VideoMAEForVideoClassification``), and maps parameter names between HF and the official code
(:func:`hf_to_official`, :func:`official_to_hf`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from videomae.checkpoints.build import (
    Model,
    _build,
    _read_safetensors,
    _torch_load,
    _write_safetensors,
    model_kind,
)
from videomae.checkpoints.official import _load_official

HF_NORM_EPS = 1e-5
"""HF's epsilon of the decoder's final norm and of ``fc_norm`` (``nn.LayerNorm`` default)."""


# ---------------------------------------------------------------------------- HF <-> official names
_LAYER_PARTS = {
    "attention.output.dense": "attn.proj",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
"""HF module path inside a layer -> our module path inside a block (attention handled apart)."""

_UNCHANGED = ("encoder_to_decoder.", "mask_token", "decoder.norm.", "decoder.head.", "fc_norm.")
"""Names that HF and the official code share."""


def hf_to_official(
    hf_state: Mapping[str, torch.Tensor], encoder_prefix: str = "encoder."
) -> dict[str, torch.Tensor]:
    """Map a ``VideoMAEForPreTraining`` or ``VideoMAEForVideoClassification`` state dict.

    HF splits the fused ``qkv`` into ``query``/``key``/``value``; its query/value biases are
    ``query.bias``/``value.bias`` (transformers 5) or ``q_bias``/``v_bias`` (transformers 4).
    ValueError on a name it does not know.

    Args:
        hf_state: the HF model's ``state_dict()``.
        encoder_prefix: where our encoder lives: ``"encoder."`` in :class:`VideoMAEPretrain`,
            ``""`` (top level) in :class:`VideoMAEClassifier`.
    """
    ours: dict[str, torch.Tensor] = {}
    prefixes = {
        "videomae.encoder.layer.": f"{encoder_prefix}blocks.",
        "decoder.decoder_layers.": "decoder.blocks.",
    }
    for name, tensor in hf_state.items():
        if name.startswith("videomae.embeddings.patch_embeddings.projection."):
            ours[f"{encoder_prefix}patch_embed.proj." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith("videomae.layernorm."):
            ours[f"{encoder_prefix}norm." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith("classifier."):
            ours["head." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith(_UNCHANGED):
            ours[name] = tensor
        else:
            prefix = next((p for p in prefixes if name.startswith(p)), None)
            if prefix is None:
                raise ValueError(f"unknown HF VideoMAE parameter {name!r}")
            index, rest = name[len(prefix) :].split(".", 1)
            base = f"{prefixes[prefix]}{index}."
            attention = "attention.attention."
            if rest.startswith(attention):
                part = rest[len(attention) :]
                if part in ("query.bias", "q_bias"):
                    ours[base + "attn.q_bias"] = tensor
                elif part in ("value.bias", "v_bias"):
                    ours[base + "attn.v_bias"] = tensor
                elif part == "query.weight":
                    ours[base + "attn.qkv.weight"] = torch.cat(
                        [
                            tensor,
                            hf_state[name.replace("query", "key")],
                            hf_state[name.replace("query", "value")],
                        ]
                    )
                elif part not in ("key.weight", "value.weight"):
                    raise ValueError(f"unknown HF VideoMAE parameter {name!r}")
                continue
            module, leaf = rest.rsplit(".", 1)
            if module not in _LAYER_PARTS:
                raise ValueError(f"unknown HF VideoMAE parameter {name!r}")
            ours[base + _LAYER_PARTS[module] + "." + leaf] = tensor
    return ours


def official_to_hf(
    state: Mapping[str, torch.Tensor], encoder_prefix: str = "encoder."
) -> dict[str, torch.Tensor]:
    """The inverse of :func:`hf_to_official`, with the transformers 5 names (``query.bias``).

    Args:
        state: our (official-named) state dict.
        encoder_prefix: ``"encoder."`` for :class:`VideoMAEPretrain`, ``""`` for
            :class:`VideoMAEClassifier`.
    """
    parts = {ours: hf for hf, ours in _LAYER_PARTS.items()}
    block = re.compile(rf"^(?:{re.escape(encoder_prefix)}|(decoder\.))blocks\.(\d+)\.(.+)$")
    hf: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        tensor = tensor.detach().contiguous()
        match = block.match(name)
        if match:
            decoder, index, rest = match.groups()
            base = (
                f"decoder.decoder_layers.{index}."
                if decoder
                else f"videomae.encoder.layer.{index}."
            )
            attention = base + "attention.attention."
            if rest == "attn.qkv.weight":
                query, key, value = tensor.chunk(3)
                hf[attention + "query.weight"] = query.contiguous()
                hf[attention + "key.weight"] = key.contiguous()
                hf[attention + "value.weight"] = value.contiguous()
            elif rest == "attn.q_bias":
                hf[attention + "query.bias"] = tensor
            elif rest == "attn.v_bias":
                hf[attention + "value.bias"] = tensor
            else:
                module, leaf = rest.rsplit(".", 1)
                if module not in parts:
                    raise ValueError(f"{name!r} has no HF transformers VideoMAE equivalent")
                hf[base + parts[module] + "." + leaf] = tensor
        elif name.startswith(f"{encoder_prefix}patch_embed.proj."):
            leaf = name.rsplit(".", 1)[1]
            hf["videomae.embeddings.patch_embeddings.projection." + leaf] = tensor
        elif name.startswith(f"{encoder_prefix}norm."):
            hf["videomae.layernorm." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith("head."):
            hf["classifier." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith(_UNCHANGED):
            hf[name] = tensor
        else:
            raise ValueError(f"{name!r} has no HF transformers VideoMAE equivalent")
    return hf


# ---------------------------------------------------------------------------- HF format
_HF_ARCHITECTURES = {
    "VideoMAEForPreTraining": "pretrain",
    "VideoMAEForVideoClassification": "classifier",
}


def _load_hf(directory: Path, kind: str | None, overrides: Mapping[str, Any]) -> Model:
    hf = json.loads((directory / "config.json").read_text())
    if hf.get("model_type") != "videomae":
        raise ValueError(f"{directory}: model_type {hf.get('model_type')!r} is not videomae")
    architecture = (hf.get("architectures") or [None])[0]
    kind = kind or _HF_ARCHITECTURES.get(architecture)
    if kind is None:
        raise ValueError(f"{directory}: unknown architecture {architecture!r}; pass kind=...")
    if (directory / "model.safetensors").is_file():
        hf_state = _read_safetensors(directory / "model.safetensors")
    elif (directory / "pytorch_model.bin").is_file():
        hf_state = _torch_load(directory / "pytorch_model.bin")
    else:
        raise ValueError(f"{directory}: no model.safetensors or pytorch_model.bin")
    if hf.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{directory}: hidden_act {hf['hidden_act']!r} is not supported (gelu)")
    hidden = hf.get("hidden_size", 768)
    size = hf.get("image_size", 224)
    config: dict[str, Any] = {
        "img_size": size if isinstance(size, int) else tuple(size),
        "patch_size": hf.get("patch_size", 16),
        "num_frames": hf.get("num_frames", 16),
        "tubelet_size": hf.get("tubelet_size", 2),
        "in_chans": hf.get("num_channels", 3),
        "embed_dim": hidden,
        "depth": hf.get("num_hidden_layers", 12),
        "num_heads": hf.get("num_attention_heads", 12),
        "mlp_ratio": hf.get("intermediate_size", 4 * hidden) / hidden,
        "qkv_bias": hf.get("qv_bias", hf.get("qkv_bias", True)),
        "norm_eps": hf.get("layer_norm_eps", 1e-12),
    }
    use_mean_pooling = hf.get("use_mean_pooling", True)
    if kind == "classifier" and architecture == "VideoMAEForPreTraining":
        # fine-tuning init from HF pretraining weights: its encoder, a fresh head (official path)
        state = hf_to_official(hf_state, encoder_prefix="encoder.")
        keep = ("img_size", "patch_size", "num_frames", "tubelet_size", "num_heads", "norm_eps")
        return _load_official(
            {"model": state},
            directory,
            "classifier",
            {**{k: config[k] for k in keep}, "fc_norm_eps": HF_NORM_EPS, **overrides},
        )
    if kind == "pretrain":
        if use_mean_pooling:
            raise ValueError(
                f"{directory}: a VideoMAEForPreTraining with use_mean_pooling=true has no final "
                f"encoder norm; VideoMAEPretrain (as the official model) needs one"
            )
        decoder = hf.get("decoder_hidden_size", 384)
        if hf.get("decoder_intermediate_size", 4 * decoder) / decoder != config["mlp_ratio"]:
            raise ValueError(f"{directory}: the decoder's MLP ratio differs from the encoder's")
        config.update(
            decoder_embed_dim=decoder,
            decoder_depth=hf.get("decoder_num_hidden_layers", 4),
            decoder_num_heads=hf.get("decoder_num_attention_heads", 6),
            decoder_norm_eps=HF_NORM_EPS,
            normalize_target=hf.get("norm_pix_loss", True),
        )
        state = hf_to_official(hf_state, encoder_prefix="encoder.")
    else:
        labels = hf.get("id2label") or {}
        config.update(
            num_classes=hf.get("num_labels", len(labels)) if labels or "num_labels" in hf else 2,
            use_mean_pooling=use_mean_pooling,
            fc_norm_eps=HF_NORM_EPS,
        )
        state = hf_to_official(
            {k: v for k, v in hf_state.items() if not k.startswith("decoder.")}, encoder_prefix=""
        )
    return _build(kind, config, state, str(directory), overrides, source_config=config)


def hf_config(model: Model) -> dict[str, Any]:
    """The ``config.json`` of the HF transformers model equivalent to ``model``.

    ValueError for what HF's VideoMAE cannot express: layer scale (``init_values``), a learned
    position table, non-square frames, a pretraining encoder without a final norm, a classifier
    without ``fc_norm`` (``use_fc_norm=False``) or with a ``head_norm``. HF fixes the
    epsilon of the decoder norm and of ``fc_norm`` to 1e-5: a model with another
    ``decoder_norm_eps``/``fc_norm_eps`` gives slightly different outputs there.
    """
    kind = model_kind(model)
    config = model.config
    if config.get("init_values", 0) and config["init_values"] > 0:
        raise ValueError("HF transformers VideoMAE has no layer scale (init_values > 0)")
    if config.get("learnable_pos_embed"):
        raise ValueError("HF transformers VideoMAE has no learned position table")
    if config.get("head_norm"):
        raise ValueError("HF transformers VideoMAE has no norm before the head (head_norm)")
    if config.get("use_fc_norm") is False:
        raise ValueError(
            "HF transformers VideoMAE always normalizes the pooled tokens (fc_norm); this "
            "classifier was built with use_fc_norm=false"
        )
    size = config["img_size"]
    if not isinstance(size, int):
        if size[0] != size[1]:
            raise ValueError(f"HF transformers VideoMAE needs square frames, got {size}")
        size = size[0]
    hidden = config["embed_dim"]
    out: dict[str, Any] = {
        "model_type": "videomae",
        "architectures": [
            "VideoMAEForPreTraining" if kind == "pretrain" else "VideoMAEForVideoClassification"
        ],
        "image_size": size,
        "patch_size": config["patch_size"],
        "num_channels": config["in_chans"],
        "num_frames": config["num_frames"],
        "tubelet_size": config["tubelet_size"],
        "hidden_size": hidden,
        "num_hidden_layers": config["depth"],
        "num_attention_heads": config["num_heads"],
        "intermediate_size": int(hidden * config["mlp_ratio"]),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": config["norm_eps"],
        "qkv_bias": config["qkv_bias"],
        "qv_bias": config["qkv_bias"],
        "torch_dtype": "float32",
    }
    if kind == "pretrain":
        decoder = config["decoder_embed_dim"]
        out.update(
            use_mean_pooling=False,
            decoder_hidden_size=decoder,
            decoder_num_hidden_layers=config["decoder_depth"],
            decoder_num_attention_heads=config["decoder_num_heads"],
            decoder_intermediate_size=int(decoder * config["mlp_ratio"]),
            norm_pix_loss=config["normalize_target"],
        )
    else:
        num_classes = config["num_classes"]
        out.update(
            use_mean_pooling=config["use_mean_pooling"],
            id2label={str(i): f"LABEL_{i}" for i in range(num_classes)},
            label2id={f"LABEL_{i}": i for i in range(num_classes)},
        )
    return out


def save_hf(model: Model, directory: str | Path) -> Path:
    """Write an HF transformers VideoMAE directory (``config.json`` + ``model.safetensors``) that
    ``VideoMAEForPreTraining`` / ``VideoMAEForVideoClassification.from_pretrained`` loads.

    See :func:`hf_config` for what HF cannot express. Returns ``directory``.
    """
    directory = Path(directory)
    config = hf_config(model)
    prefix = "encoder." if model_kind(model) == "pretrain" else ""
    state = official_to_hf(model.state_dict(), encoder_prefix=prefix)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    _write_safetensors(state, directory / "model.safetensors")
    return directory
