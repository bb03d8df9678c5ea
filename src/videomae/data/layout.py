"""How clips lie in memory between the decoder and the device: channels last, never transposed.

Clips keep the logical shape ``(..., C, T, H, W)`` everywhere, but on the host their memory is
``(..., T, H, W, C)``, the order the decoder writes and the uint8 resize keeps: a
``(C, T, H, W)`` clip is a permuted view (:func:`channels_last_clip`), stacks and batches keep
that order (:func:`stack`, :func:`collate`), and pinning and the copy to the device keep the
strides. The one transpose to the contiguous ``(C, T, H, W)`` the networks take happens on the
device, in the same pass as the conversion to float (:func:`videomae.data.device.normalize_video`).
A contiguous ``(C, T, H, W)`` clip made the way there took a strided transpose per clip in the
worker, about 3 ms of a 224-pixel clip's 18 on one CPU core (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data._utils.collate import collate as _torch_collate
from torch.utils.data._utils.collate import collate_tensor_fn, default_collate_fn_map

__all__ = ["channels_last_clip", "collate", "memory_order", "stack"]


def channels_last_clip(clip: torch.Tensor) -> torch.Tensor:
    """``(T, C, H, W)`` -> ``(C, T, H, W)`` whose memory is ``(T, H, W, C)``: no copy when
    ``clip`` already lies channels last (as the uint8 resize returns it), else one copy."""
    if clip.ndim != 4:
        raise ValueError(f"expected a clip (T, C, H, W), got shape {tuple(clip.shape)}")
    return clip.permute(0, 2, 3, 1).contiguous().permute(3, 0, 1, 2)


def memory_order(tensor: torch.Tensor) -> tuple[int, ...]:
    """``tensor``'s dimensions from outermost to innermost in memory (by stride, ties in
    dimension order): ``tensor.permute(order)`` is contiguous where ``tensor`` is dense."""
    return tuple(sorted(range(tensor.ndim), key=lambda d: (-tensor.stride(d), d)))


def _restack(tensors: Sequence[torch.Tensor], stack_fn) -> torch.Tensor:
    """``stack_fn`` over ``tensors`` permuted to their memory order, the result's dimensions put
    back: the stacked tensor has the inputs' memory order below its new first dimension."""
    order = memory_order(tensors[0])
    if order == tuple(range(len(order))) or any(memory_order(t) != order for t in tensors):
        return stack_fn(list(tensors))
    stacked = stack_fn([t.permute(order) for t in tensors])
    back = [0] * len(order)
    for position, dim in enumerate(order):
        back[dim] = position + 1
    return stacked.permute(0, *back)


def stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """:func:`torch.stack` on a new first dimension that keeps the tensors' memory order (a
    plain copy, where ``torch.stack`` would transpose channels-last clips into ``(C, T, H, W)``
    memory)."""
    if not tensors:
        raise ValueError("nothing to stack")
    return _restack(tensors, torch.stack)


def _collate_tensors(batch: Sequence[torch.Tensor], *, collate_fn_map=None) -> torch.Tensor:
    """torch's tensor collation (into shared memory in a worker), keeping memory order."""
    return _restack(batch, lambda ts: collate_tensor_fn(ts, collate_fn_map=collate_fn_map))


_COLLATE_MAP = {**default_collate_fn_map, torch.Tensor: _collate_tensors}


def collate(batch: list[Any]) -> Any:
    """:func:`torch.utils.data.default_collate`, except that stacked tensors keep their memory
    order (channels-last clips stay channels last)."""
    return _torch_collate(batch, collate_fn_map=_COLLATE_MAP)
