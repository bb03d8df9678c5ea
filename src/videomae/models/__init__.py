"""Models: ``nn.Module``s only (no Lightning, no I/O, nothing from ``videomae.data``).

- :mod:`~videomae.models.vit`: tubelet embedding, sinusoidal table, attention, blocks, encoder.
- :mod:`~videomae.models.masking`: tube and random mask generators.
- :mod:`~videomae.models.pretrain`: the masked-autoencoder pretraining network.
- :mod:`~videomae.models.registry`: named backbone sizes.
"""

from videomae.models.masking import RandomMasking, TubeMasking, split_mask
from videomae.models.pretrain import PretrainDecoder, VideoMAEPretrain
from videomae.models.registry import SIZES, BackboneSize, create_pretrain, get_size
from videomae.models.vit import (
    Attention,
    Block,
    DropPath,
    Mlp,
    PatchEmbed,
    VisionTransformerEncoder,
    sinusoid_table,
)

__all__ = [
    "SIZES",
    "Attention",
    "BackboneSize",
    "Block",
    "DropPath",
    "Mlp",
    "PatchEmbed",
    "PretrainDecoder",
    "RandomMasking",
    "TubeMasking",
    "VideoMAEPretrain",
    "VisionTransformerEncoder",
    "create_pretrain",
    "get_size",
    "sinusoid_table",
    "split_mask",
]
