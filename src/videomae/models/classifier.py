"""The VideoMAE fine-tuning network: the pretraining encoder, mean pooling, ``fc_norm``, ``head``.

The layout and names follow the official fine-tuning ``VisionTransformer`` (MCG-NJU/VideoMAE and
OpenGVLab/VideoMAEv2 ``modeling_finetune.py``): ``patch_embed.proj``, ``blocks.N.*``, ``fc_norm``,
``head`` at the top level (no ``encoder.`` prefix), so an official fine-tuned checkpoint loads with
``load_state_dict`` as it is, and a pretraining checkpoint's ``encoder.*`` weights load after
dropping the prefix (the head and ``fc_norm`` then keep their initialization)::

    video (B, 3, T, H, W) --patch_embed + positions + blocks--> tokens (B, N, D)
      --mean over N, fc_norm--> features (B, D)
      --fc_dropout, head_dropout, [head_norm,] head--> logits (B, num_classes)

Linear probing (MAE's recipe) adds ``head_norm``: a BatchNorm without affine parameters (or a
LayerNorm) between the frozen features and the linear head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from videomae.models.config import ClassifierConfig
from videomae.models.vit import ClipGeometry, VisionTransformerTrunk, no_weight_decay_names


def _make_head_norm(kind: str | None, dim: int) -> nn.Module:
    """The ``head_norm`` module of kind ``kind`` for ``dim`` features (see
    :data:`~videomae.models.config.HEAD_NORMS`)."""
    if kind == "batchnorm":
        return nn.BatchNorm1d(dim, affine=False, eps=1e-6)
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
    return nn.Identity()


def init_finetune_weights(module: nn.Module) -> None:
    """The official fine-tuning initialization, for ``module.apply``.

    Linear: normal weight with std 0.02 (timm ``trunc_normal_``, cut at +-2, i.e. 100 std), zero
    bias; LayerNorm: weight 1, bias 0. Conv3d keeps PyTorch's default initialization.
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class VideoMAEClassifier(ClipGeometry, VisionTransformerTrunk):
    """VideoMAE video classifier: ``logits = model(video)``.

    ``video`` is a normalized float ``(B, 3, T, H, W)``; ``logits`` are ``(B, num_classes)``.
    The clip geometry and transformer arguments are those of
    :class:`~videomae.models.pretrain.VideoMAEPretrain`, so that a pretrained encoder's weights
    fit.

    With ``use_mean_pooling`` (the default and the official recipe) the tokens are averaged and
    normalized by ``fc_norm``; ``norm`` is an Identity. Without it ``norm`` normalizes the tokens
    and the first token is the feature, as in the official code (which has no class token: this
    is the first tubelet's token; kept only so that such checkpoints run as they did).

    The arguments are the fields of :class:`~videomae.models.config.ClassifierConfig` (see
    there): they become ``self.config``, which the checkpoints store. Linear probing adds
    ``head_norm`` (BatchNorm1d without affine parameters, eps 1e-6, as MAE's linear probe, or a
    LayerNorm) right before ``head``.
    """

    def __init__(
        self,
        num_classes: int,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        num_frames: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        init_values: float = 0.0,
        use_mean_pooling: bool = True,
        init_scale: float = 0.001,
        fc_drop_rate: float = 0.0,
        head_drop_rate: float = 0.0,
        learnable_pos_embed: bool = False,
        grad_checkpointing: bool = False,
        attention: str = "auto",
        fc_norm_eps: float = 1e-6,
        head_norm: str | None = None,
        use_fc_norm: bool = True,
    ) -> None:
        arguments = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        cfg = ClassifierConfig(**arguments)
        super().__init__(
            **cfg.encoder_kwargs(),
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            final_norm=not use_mean_pooling,
            learnable_pos_embed=learnable_pos_embed,
        )
        self.config = cfg
        self.num_classes = num_classes
        self.use_mean_pooling = use_mean_pooling
        self.fc_norm = (
            nn.LayerNorm(embed_dim, eps=fc_norm_eps) if use_mean_pooling and use_fc_norm else None
        )
        self.fc_dropout = nn.Dropout(fc_drop_rate) if fc_drop_rate > 0 else nn.Identity()
        self.head_dropout = nn.Dropout(head_drop_rate) if head_drop_rate > 0 else nn.Identity()
        self.head_norm: nn.Module = _make_head_norm(head_norm, embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        # The official order: every Linear (head included) from N(0, 0.02), then the head scaled.
        self.apply(init_finetune_weights)
        if isinstance(self.head, nn.Linear):
            with torch.no_grad():
                self.head.weight.mul_(init_scale)
                self.head.bias.mul_(init_scale)

    # ------------------------------------------------------------------ geometry
    def no_weight_decay(self) -> set[str]:
        """Names of the parameters trained without weight decay.

        ``pos_embed`` when it is learned, plus every 1-D parameter and every bias (the rule of the
        official optimizer factory; see :func:`videomae.models.vit.no_weight_decay_names`).
        """
        return no_weight_decay_names(self, always=("pos_embed",))

    # ------------------------------------------------------------------ forward
    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """Pooled clip features: video ``(B, C, T, H, W)`` -> ``(B, embed_dim)``.

        ``fc_norm`` of the token mean with ``use_mean_pooling`` (the plain mean without
        ``use_fc_norm``), else the first normalized token. For linear probing and feature
        extraction; no dropout of the head is applied.
        """
        x = self.forward_tokens(self.embed(video))  # (B, N, D)
        if not self.use_mean_pooling:
            return x[:, 0]
        pooled = x.mean(dim=1)
        return self.fc_norm(pooled) if self.fc_norm is not None else pooled

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits from pooled features ``(B, embed_dim)`` -> ``(B, num_classes)``: the
        feature dropouts, ``head_norm`` and ``head``."""
        return self.head(self.head_norm(self.head_dropout(self.fc_dropout(features))))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Class logits: video ``(B, C, T, H, W)`` -> ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(video))

    def set_head_norm(self, kind: str | None) -> None:
        """Replace ``head_norm`` by a fresh one of ``kind`` (None, ``batchnorm``, ``layernorm``),
        e.g. to linear-probe a classifier built without one; ``config`` follows."""
        self.config = self.config.replace(head_norm=kind)
        self.head_norm = _make_head_norm(kind, self.embed_dim)

    # ------------------------------------------------------------------ optimizer groups
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """The parameter-group rule in timm's format (for
        :func:`timm.optim.param_groups_layer_decay`): the tubelet embedding and positions first,
        one group per block; the unmatched rest (``norm``, ``fc_norm``, ``head``) is the last
        layer, as in the official layer-decay rule (timm's own ViTs merge the final norm into the
        last block instead). ``coarse`` is accepted for timm's interface; the groups are the
        same."""
        return {"stem": r"^pos_embed|^patch_embed", "blocks": [(r"^blocks\.(\d+)", None)]}
