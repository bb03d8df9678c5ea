"""The typed model configs: clip geometry, encoder and decoder sizes, derived token counts.

One frozen dataclass per network (:class:`PretrainConfig`, :class:`ClassifierConfig`, both a
:class:`ModelConfig`): the networks build one from their keyword arguments and expose it as
``net.config``; the checkpoints store it whole (:meth:`ModelConfig.to_dict`) and rebuild the
network from it, a key that an older checkpoint lacks taking its default here. The named sizes
(:data:`SIZES`) and the ``backbone`` config schema come from :class:`BackboneSize`.

Nothing here imports torch: the config checks read it before any work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

ATTENTION_NAMES = ("auto", "math", "flash", "efficient", "cudnn")
"""Values of ``attention``: PyTorch chooses the SDPA kernel (``auto``), or one is pinned."""

HEAD_NORMS = (None, "batchnorm", "layernorm")
"""Values of the classifier's ``head_norm``."""

C = TypeVar("C", bound="ModelConfig")


def as_pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``(H, W)`` from an int or a pair."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def token_grid(
    img_size: int | tuple[int, int], num_frames: int, patch_size: int, tubelet_size: int
) -> tuple[int, int, int]:
    """The token grid ``(T', H', W')`` of a clip: frames / tubelet, rows and columns / patch."""
    height, width = as_pair(img_size)
    return num_frames // tubelet_size, height // patch_size, width // patch_size


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Mapping):
    """What both networks share: the clip geometry and the encoder.

    A read-only mapping of its fields too (``config["embed_dim"]``, ``dict(config)``).

    Args:
        img_size: frame side, or ``(H, W)``; divisible by ``patch_size``.
        patch_size: spatial patch side.
        num_frames: frames per clip; divisible by ``tubelet_size``.
        tubelet_size: frames per tubelet.
        in_chans: input channels.
        embed_dim, depth, num_heads: encoder width, blocks, attention heads.
        mlp_ratio: MLP width ratio of the blocks.
        qkv_bias: learn query/value biases.
        norm_eps: LayerNorm epsilon (1e-6 in the official models).
        drop_path_rate: stochastic depth, rising linearly over the blocks to this value.
        init_values: layer-scale init (0 = none).
        grad_checkpointing: recompute block activations in backward during training.
        attention: SDPA backend (:data:`ATTENTION_NAMES`).
    """

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    num_frames: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    drop_path_rate: float = 0.0
    init_values: float = 0.0
    grad_checkpointing: bool = False
    attention: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.img_size, int):  # a list from JSON or YAML, a torch.Size, ...
            object.__setattr__(self, "img_size", tuple(int(v) for v in self.img_size))
        if self.attention not in ATTENTION_NAMES:
            raise ValueError(
                f"attention must be one of {', '.join(ATTENTION_NAMES)}; got {self.attention!r}"
            )

    # ------------------------------------------------------------------ derived
    @property
    def frame_size(self) -> tuple[int, int]:
        """``(H, W)`` of a frame."""
        return as_pair(self.img_size)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """The token grid ``(T', H', W')``."""
        return token_grid(self.img_size, self.num_frames, self.patch_size, self.tubelet_size)

    @property
    def num_patches(self) -> int:
        """Tokens per clip ``N = T' * H' * W'``."""
        t, h, w = self.grid_size
        return t * h * w

    @property
    def patch_dim(self) -> int:
        """Values per token: ``tubelet * patch * patch * in_chans``."""
        return self.tubelet_size * self.patch_size * self.patch_size * self.in_chans

    def encoder_kwargs(self) -> dict[str, Any]:
        """The fields of :class:`ModelConfig` (geometry and encoder): keyword arguments of
        :class:`videomae.models.vit.VisionTransformerTrunk`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ModelConfig)}

    # ------------------------------------------------------------------ mapping
    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    # ------------------------------------------------------------------ storage
    def to_dict(self) -> dict[str, Any]:
        """Every field, as the network's keyword arguments (what a checkpoint stores)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """The config of stored ``values``; missing keys take their defaults, unknown keys are
        a ValueError naming them."""
        unknown = sorted(set(values) - set(cls._names()))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
        return cls(**values)

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(ModelConfig):
    """The pretraining network: :class:`ModelConfig` plus the decoder and the target.

    Args:
        decoder_embed_dim, decoder_depth, decoder_num_heads: the decoder.
        decoder_norm_eps: epsilon of the decoder's final ``norm`` (official 1e-6; HF
            transformers' ``VideoMAEForPreTraining`` uses 1e-5 there).
        normalize_target: regress per-tubelet normalized pixels (the paper's default).
    """

    decoder_embed_dim: int = 384
    decoder_depth: int = 4
    decoder_num_heads: int = 6
    decoder_norm_eps: float = 1e-6
    normalize_target: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.in_chans != 3:
            raise ValueError(
                f"in_chans must be 3 (the target undoes the RGB ImageNet normalization), "
                f"got {self.in_chans}"
            )


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig(ModelConfig):
    """The fine-tuning network: :class:`ModelConfig` plus pooling and the head.

    Args:
        num_classes: classes of the head (0: no head, the pooled features).
        drop_rate: dropout after the position embedding, in the MLPs and projections.
        attn_drop_rate: attention-weight dropout.
        use_mean_pooling: mean-pool the tokens (+ ``fc_norm``), else ``norm`` + first token.
        use_fc_norm: with mean pooling, normalize the token mean with ``fc_norm``.
        fc_norm_eps: epsilon of ``fc_norm`` (official 1e-6; HF uses 1e-5).
        init_scale: factor on the head's initial weight and bias (official 0.001).
        fc_drop_rate: dropout before the head (VideoMAE V1 ``fc_dropout``).
        head_drop_rate: dropout before the head (VideoMAE V2 ``head_dropout``).
        learnable_pos_embed: learn the position embedding (else the fixed sinusoidal table).
        head_norm: normalization right before the head, for linear probing
            (:data:`HEAD_NORMS`).
    """

    num_classes: int
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    use_mean_pooling: bool = True
    use_fc_norm: bool = True
    fc_norm_eps: float = 1e-6
    init_scale: float = 0.001
    fc_drop_rate: float = 0.0
    head_drop_rate: float = 0.0
    learnable_pos_embed: bool = False
    head_norm: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")
        if self.head_norm not in HEAD_NORMS:
            raise ValueError(
                f"head_norm must be one of {', '.join(map(str, HEAD_NORMS))}; "
                f"got {self.head_norm!r}"
            )
        if not self.use_fc_norm and not self.use_mean_pooling:
            raise ValueError(
                "use_fc_norm=False needs use_mean_pooling=True (fc_norm normalizes the token "
                "mean; without mean pooling there is none)"
            )


# ---------------------------------------------------------------------------- named sizes
@dataclass(frozen=True)
class BackboneSize:
    """Encoder and decoder sizes of one named backbone (the ``backbone`` config group's keys,
    with ``name`` and ``tubelet_size``)."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    patch_size: int
    decoder_embed_dim: int
    decoder_depth: int
    decoder_num_heads: int

    def as_kwargs(self) -> dict[str, Any]:
        """The sizes as keyword arguments of the pretraining network."""
        return dataclasses.asdict(self)

    def encoder_kwargs(self) -> dict[str, Any]:
        """The encoder sizes only (no ``decoder_*``): keyword arguments of the classifier."""
        return {k: v for k, v in self.as_kwargs().items() if not k.startswith("decoder_")}


SIZES: dict[str, BackboneSize] = {
    # A CPU-test size: a few seconds per step on 2 cores at 96 px, 16 frames.
    "tiny": BackboneSize(192, 4, 3, 4.0, 16, 96, 2, 3),
    "vit_s": BackboneSize(384, 12, 6, 4.0, 16, 192, 4, 3),
    "vit_b": BackboneSize(768, 12, 12, 4.0, 16, 384, 4, 6),
    "vit_l": BackboneSize(1024, 24, 16, 4.0, 16, 512, 12, 8),
    "vit_h": BackboneSize(1280, 32, 16, 4.0, 16, 640, 12, 8),
    # VideoMAE V2 giant: patch 14, MLP hidden int(1408 * 48 / 11) = 6144.
    "vit_g": BackboneSize(1408, 40, 16, 48 / 11, 14, 512, 4, 8),
}
"""The named sizes of the official VideoMAE (V1: S/B/L/H) and VideoMAE V2 (g) models; the
``backbone`` configs repeat them (a test keeps the two equal)."""

NUM_HEADS: dict[int, int] = {s.embed_dim: s.num_heads for s in SIZES.values()}
"""Encoder attention heads of the named widths (for checkpoints that do not store them)."""

DECODER_NUM_HEADS: dict[int, int] = {
    s.decoder_embed_dim: s.decoder_num_heads for s in SIZES.values()
}
"""Decoder attention heads of the named decoder widths."""
