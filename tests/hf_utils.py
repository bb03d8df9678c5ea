"""Helpers of the HF transformers equivalence tests.

The HF -> official name map lives in :mod:`videomae.checkpoints.hf` (one copy); it is re-exported.
"""

from __future__ import annotations

import torch

from videomae.checkpoints.hf import hf_to_official

__all__ = ["hf_to_official", "randomize_"]


def randomize_(model: torch.nn.Module, std: float = 0.02) -> None:
    """Add noise to every parameter in place (HF inits biases to zero; this makes the name map
    matter for every tensor)."""
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * std)
