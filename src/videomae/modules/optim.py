"""Optimizer parameter groups with layer-wise learning-rate decay (fine-tuning).

The rule of the official VideoMAE / BEiT fine-tuning code (``LayerDecayValueAssigner``), which is
also what timm's :func:`timm.optim.param_groups_layer_decay` computes for a model with a ViT
``group_matcher``: the tubelet embedding and the position table are layer 0, block ``i`` is layer
``i + 1``, everything after the blocks (``norm``, ``fc_norm``, ``head``) is layer ``depth + 1``;
layer ``l`` trains at ``layer_decay ** (depth + 1 - l)`` times the learning rate.

Names are looked up after :func:`~videomae.modules.schedules.clean_param_name`, and the no-decay
set is read off the unwrapped model, so the groups are the same under FSDP (flattened 1-D
parameters with wrapper prefixes), DDP and ``torch.compile``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from torch import nn

from videomae.modules.schedules import clean_param_name

_BLOCK = re.compile(r"^(?:encoder\.)?blocks\.(\d+)\.")
_STEM = ("patch_embed.", "pos_embed", "cls_token", "mask_token")


def vit_layer_id(name: str, depth: int) -> int:
    """The layer of parameter ``name`` (unwrapped, official names) in a ViT of ``depth`` blocks.

    ``patch_embed.*``, ``pos_embed`` (and ``cls_token``/``mask_token``) -> 0; ``blocks.i.*`` ->
    ``i + 1``; anything else (``norm``, ``fc_norm``, ``head``, ``head_norm``) -> ``depth + 1``.
    A leading ``encoder.`` (the pretraining network) is accepted.
    """
    name = name.removeprefix("encoder.")
    if name.startswith(_STEM):
        return 0
    match = _BLOCK.match(name)
    if match:
        return int(match.group(1)) + 1
    return depth + 1


def layer_scales(layer_decay: float, depth: int) -> list[float]:
    """The lr multiplier of each layer ``0 .. depth + 1``: ``layer_decay ** (depth + 1 - l)``
    (``layer_decay`` in (0, 1], checked by :class:`~videomae.modules.config.OptimConfig`)."""
    return [layer_decay ** (depth + 1 - layer) for layer in range(depth + 2)]


def param_groups_layer_decay(
    model: nn.Module,
    *,
    weight_decay: float,
    no_decay: Collection[str],
    layer_decay: float,
    depth: int,
    layer_id: Callable[[str, int], int] = vit_layer_id,
) -> list[dict]:
    """AdamW parameter groups, one per (layer, decay / no decay), each with an ``lr_scale``.

    Args:
        model: the (possibly wrapped) network; only parameters with ``requires_grad`` are grouped.
        weight_decay: weight decay of the decayed groups.
        no_decay: names (unwrapped) trained without weight decay: norms, biases, the position
            table (``net.no_weight_decay()`` read before any wrapping).
        layer_decay: the per-layer lr decay (1.0: every ``lr_scale`` is 1).
        depth: number of transformer blocks.
        layer_id: ``(clean name, depth) -> layer`` (default :func:`vit_layer_id`).

    Returns:
        Groups ``{"params", "weight_decay", "lr_scale", "name"}`` ordered by layer; the
        LightningModule multiplies each group's lr by its ``lr_scale`` (the official recipe scales
        the whole schedule, warmup and minimum included).
    """
    scales = layer_scales(layer_decay, depth)
    no_decay = set(no_decay)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        clean = clean_param_name(name)
        layer = layer_id(clean, depth)
        decayed = clean not in no_decay
        key = (layer, decayed)
        if key not in groups:
            groups[key] = {
                "params": [],
                "weight_decay": weight_decay if decayed else 0.0,
                "lr_scale": scales[layer],
                "name": f"layer_{layer}_{'decay' if decayed else 'no_decay'}",
            }
        groups[key]["params"].append(param)
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], not k[1]))]
