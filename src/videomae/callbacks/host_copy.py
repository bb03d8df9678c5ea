"""Reading small device values on the host without making it wait for the device.

A ``.item()`` of a CUDA tensor blocks the host until the device has run everything queued
before it, which on a training step leaves the GPU idle while the host then prepares the next
one. The callbacks that need a per-step decision from device values (the NaN/inf guard, the
preemption agreement between ranks) copy them to pinned host memory without blocking and read
them at the next step, after waiting on the copy's event (done by then, unless the device lags a
whole step behind); every rank so reads the same step's value at the same step.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["copy_to_host"]


def copy_to_host(value: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """A host copy of ``value`` that does not wait for it, and the CUDA event after which the
    copy holds the value (``event.synchronize()``); on the CPU a plain copy and None."""
    if value.device.type != "cuda":
        return value.detach().clone(), None
    host = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
    host.copy_(value, non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return host, event
