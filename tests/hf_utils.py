"""Map HF transformers VideoMAE state dicts to our (official VideoMAE) parameter names.

Shared by the pretraining and classifier equivalence tests.
"""

from __future__ import annotations

import torch

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
    hf_state: dict[str, torch.Tensor], encoder_prefix: str = "encoder."
) -> dict[str, torch.Tensor]:
    """Map a ``VideoMAEForPreTraining`` or ``VideoMAEForVideoClassification`` state dict.

    HF splits the fused ``qkv`` into ``query``/``key``/``value``; its query/value biases are
    ``query.bias``/``value.bias`` (transformers 5) or ``q_bias``/``v_bias`` (transformers 4).

    Args:
        hf_state: the HF model's ``state_dict()``.
        encoder_prefix: where our encoder lives: ``"encoder."`` in
            :class:`~videomae.models.pretrain.VideoMAEPretrain`, ``""`` (top level) in
            :class:`~videomae.models.classifier.VideoMAEClassifier`.
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
            prefix = next(p for p in prefixes if name.startswith(p))
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
                continue
            module, leaf = rest.rsplit(".", 1)
            ours[base + _LAYER_PARTS[module] + "." + leaf] = tensor
    return ours


def randomize_(model: torch.nn.Module, std: float = 0.02) -> None:
    """Add noise to every parameter in place (HF inits biases to zero; this makes the name map
    matter for every tensor)."""
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * std)
