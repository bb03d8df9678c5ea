"""The VideoMAE pretraining network: encoder on visible tokens, light decoder, pixel target, loss.

The layout and names follow the official ``PretrainVisionTransformer`` (``encoder.*``,
``encoder_to_decoder``, ``mask_token``, ``decoder.blocks.N.*``, ``decoder.norm``, ``decoder.head``),
so an official pretraining checkpoint loads with ``load_state_dict`` as it is; the position tables
are non-persistent buffers, not in the state dict.

``forward`` is ``forward_encoder`` -> ``forward_decoder`` -> ``forward_loss``; with ``B`` clips,
``N`` tokens of which ``M`` are masked (the same ``M`` per clip)::

    forward_encoder: video (B, 3, T, H, W) --blocks on the visible tokens--> (B, N - M, D_enc)
    forward_decoder: --encoder_to_decoder--> (B, N - M, D_dec) + positions of the visible tokens
      ++ mask_token + positions of the masked tokens                        -> (B, N, D_dec)
      --decoder blocks, norm + head on the last M tokens--> pred (B, M, tubelet * p * p * 3)
    forward_loss: MSE(pred, pixel_target(video) of the masked tokens)

``patchify``, ``unpatchify``, ``pixel_tubelets`` and ``pixel_target`` are pure functions of the
clip and the geometry (tubelet and patch size).

Visible tokens come first and masked tokens after, each group in ascending token order, as in the
official code; ``pred`` is therefore in ascending token order of the masked tokens.

With VideoMAE V2 dual masking (``model(video, mask, decoder_mask=...)``), mask tokens go to the
tokens the decoder keeps (``~decoder_mask``) and the loss covers ``mask & ~decoder_mask``.
"""

from __future__ import annotations

import torch
from torch import nn

from videomae.constants import IMAGENET_MEAN, IMAGENET_STD
from videomae.models.config import PretrainConfig
from videomae.models.masking import split_mask, split_masks
from videomae.models.vit import (
    Block,
    ClipGeometry,
    VisionTransformerEncoder,
    gather_tokens,
    init_vit_weights,
    no_weight_decay_names,
    run_blocks,
    sinusoid_table,
)

TARGET_EPS = 1e-6
"""Added to the per-tubelet standard deviation of the normalized target (official value)."""


def patchify(frames: torch.Tensor, tubelet_size: int, patch_size: int) -> torch.Tensor:
    """Cut frames ``(B, C, T, H, W)`` into tokens ``(B, N, tubelet * p * p, C)``.

    Tokens in ``(t h w)`` order; the pixels of a token laid out ``(p0 p1 p2)`` (frame in the
    tubelet, row, column). :func:`unpatchify` is the inverse.
    """
    b, c, frames_, height, width = frames.shape
    t, p = tubelet_size, patch_size
    x = frames.reshape(b, c, frames_ // t, t, height // p, p, width // p, p)
    # (b, c, T', p0, H', p1, W', p2) -> (b, T', H', W', p0, p1, p2, c)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, -1, t * p * p, c)


def unpatchify(
    tokens: torch.Tensor, grid: tuple[int, int, int], tubelet_size: int, patch_size: int
) -> torch.Tensor:
    """Frames ``(B, 3, T, H, W)`` from RGB tokens ``(B, N, tubelet * p * p * 3)`` (or
    ``(B, N, tubelet * p * p, 3)``) on the token grid ``(T', H', W')``, laid out as
    :func:`patchify` makes them."""
    t, p = tubelet_size, patch_size
    grid_t, grid_h, grid_w = grid
    b = tokens.shape[0]
    x = tokens.reshape(b, grid_t, grid_h, grid_w, t, p, p, 3)
    # (b, T', H', W', p0, p1, p2, c) -> (b, c, T', p0, H', p1, W', p2)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, 3, grid_t * t, grid_h * p, grid_w * p)


@torch.no_grad()
def pixel_tubelets(video: torch.Tensor, tubelet_size: int, patch_size: int) -> torch.Tensor:
    """The RGB pixels in [0, 1] of every token: float32 ``(B, N, tubelet * p * p, 3)``.

    The ImageNet normalization of ``video`` ``(B, 3, T, H, W)`` undone, then :func:`patchify`;
    in float32 without autocast.
    """
    with torch.autocast(device_type=video.device.type, enabled=False):
        mean = torch.tensor(IMAGENET_MEAN, device=video.device).view(1, 3, 1, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=video.device).view(1, 3, 1, 1, 1)
        return patchify(video.float() * std + mean, tubelet_size, patch_size)


def tubelet_stats(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token, per-channel mean and scale (unbiased std + :data:`TARGET_EPS`) of tubelet
    pixels ``(B, K, tubelet * p * p, 3)``, each ``(B, K, 1, 3)``: the normalized target is
    ``(pixels - mean) / scale``."""
    var, mean = torch.var_mean(pixels, dim=-2, unbiased=True, keepdim=True)
    return mean, var.sqrt() + TARGET_EPS


@torch.no_grad()
def pixel_target(
    video: torch.Tensor,
    tubelet_size: int,
    patch_size: int,
    normalize: bool = True,
    ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """The regression target of every token, or of tokens ``ids`` (long ``(B, K)``, in that
    order): float32 ``(B, N or K, tubelet * p * p * 3)``.

    :func:`pixel_tubelets`, and with ``normalize`` each channel standardized over the
    tubelet's pixels (:func:`tubelet_stats`), in float32 without autocast. With ``ids`` only
    those tokens are normalized (a token's target depends on its own pixels alone).
    """
    pixels = pixel_tubelets(video, tubelet_size, patch_size)
    if ids is not None:
        pixels = torch.gather(pixels, 1, ids[:, :, None, None].expand(-1, -1, *pixels.shape[2:]))
    with torch.autocast(device_type=video.device.type, enabled=False):
        if normalize:
            mean, scale = tubelet_stats(pixels)
            pixels = (pixels - mean) / scale
        return pixels.reshape(pixels.shape[0], pixels.shape[1], -1)


class PretrainDecoder(nn.Module):
    """The VideoMAE decoder: blocks over all tokens, then ``norm`` and ``head`` on the masked ones.

    Args:
        embed_dim: decoder width ``D_dec``.
        depth: decoder blocks.
        num_heads: decoder attention heads.
        out_dim: pixels per token, ``tubelet * patch * patch * 3``.
        mlp_ratio, qkv_bias, drop_path_rate, init_values, norm_eps: as in the encoder.
        final_norm_eps: epsilon of the final ``norm`` (default ``norm_eps``; HF transformers
            uses 1e-5 there).
        grad_checkpointing: recompute block activations in backward during training.
        attention: SDPA backend of the blocks (:data:`videomae.models.vit.ATTENTION_BACKENDS`).
    """

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        out_dim: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        init_values: float = 0.0,
        norm_eps: float = 1e-6,
        grad_checkpointing: bool = False,
        attention: str = "auto",
        final_norm_eps: float | None = None,
    ) -> None:
        super().__init__()
        self.grad_checkpointing = grad_checkpointing
        rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth else []
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop_path=rate,
                init_values=init_values,
                norm_eps=norm_eps,
                attention=attention,
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(
            embed_dim, eps=norm_eps if final_norm_eps is None else final_norm_eps
        )
        self.head = nn.Linear(embed_dim, out_dim)
        self.apply(init_vit_weights)

    def forward(self, x: torch.Tensor, num_masked: int) -> torch.Tensor:
        """Tokens ``(B, N, D_dec)``, masked ones last -> prediction ``(B, num_masked, out_dim)``."""
        x = run_blocks(self.blocks, x, self.grad_checkpointing, self.training)
        return self.head(self.norm(x[:, x.shape[1] - num_masked :]))


class VideoMAEPretrain(ClipGeometry, nn.Module):
    """VideoMAE masked-autoencoder pretraining network.

    ``loss, pred = model(video, mask)`` with ``video`` ImageNet-normalized float
    ``(B, 3, T, H, W)`` and ``mask`` bool ``(B, N)`` (True = masked, the same count per clip);
    ``pred`` is ``(B, M, tubelet * patch * patch * 3)`` for the masked tokens in ascending order,
    ``loss`` the mean squared error against :meth:`target` over the masked tokens.

    The arguments are the fields of :class:`~videomae.models.config.PretrainConfig` (see there):
    they become ``self.config``, which the geometry properties, the checkpoints and the
    callbacks read.
    """

    def __init__(
        self,
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
        decoder_embed_dim: int = 384,
        decoder_depth: int = 4,
        decoder_num_heads: int = 6,
        norm_eps: float = 1e-6,
        drop_path_rate: float = 0.0,
        init_values: float = 0.0,
        normalize_target: bool = True,
        grad_checkpointing: bool = False,
        attention: str = "auto",
        decoder_norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        arguments = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.config = cfg = PretrainConfig(**arguments)
        self.encoder = VisionTransformerEncoder(**cfg.encoder_kwargs())
        self.decoder = PretrainDecoder(
            embed_dim=cfg.decoder_embed_dim,
            depth=cfg.decoder_depth,
            num_heads=cfg.decoder_num_heads,
            out_dim=cfg.patch_dim,
            mlp_ratio=cfg.mlp_ratio,
            qkv_bias=cfg.qkv_bias,
            drop_path_rate=cfg.drop_path_rate,
            init_values=cfg.init_values,
            norm_eps=cfg.norm_eps,
            grad_checkpointing=cfg.grad_checkpointing,
            attention=cfg.attention,
            final_norm_eps=cfg.decoder_norm_eps,
        )
        # Default nn.Linear init, as the official model (its _init_weights is not applied here).
        self.encoder_to_decoder = nn.Linear(cfg.embed_dim, cfg.decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_embed_dim))
        # Official trunc_normal_: std 0.02, truncated at +-1 std.
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)
        self.register_buffer(
            "pos_embed", sinusoid_table(cfg.num_patches, cfg.decoder_embed_dim), persistent=False
        )

    # ------------------------------------------------------------------ geometry
    @property
    def grid_size(self) -> tuple[int, int, int]:
        """The token grid ``(T', H', W')`` the mask generator draws on."""
        return self.config.grid_size

    @property
    def num_patches(self) -> int:
        """Tokens per clip ``N = T' * H' * W'``."""
        return self.config.num_patches

    @property
    def normalize_target(self) -> bool:
        """Whether the target is per-tubelet normalized pixels."""
        return self.config.normalize_target

    @property
    def grad_checkpointing(self) -> bool:
        """Whether encoder and decoder blocks recompute their activations in backward."""
        return self.encoder.grad_checkpointing

    @grad_checkpointing.setter
    def grad_checkpointing(self, value: bool) -> None:
        self.encoder.grad_checkpointing = bool(value)
        self.decoder.grad_checkpointing = bool(value)
        self.config = self.config.replace(grad_checkpointing=bool(value))

    def no_weight_decay(self) -> set[str]:
        """Names of the parameters trained without weight decay.

        ``mask_token``, plus every 1-D parameter (LayerNorm weights and biases, all biases,
        ``q_bias``/``v_bias``, layer-scale ``gamma``s) -- the rule of the official optimizer
        factory (``ndim == 1`` or a name ending in ``.bias`` or a name in this list).
        """
        return no_weight_decay_names(self, always=("mask_token",))

    # ------------------------------------------------------------------ forward
    def forward_encoder(
        self,
        video: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        visible_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encoder features of the visible tokens: ``(B, N - M, embed_dim)``, ascending order.

        The visible tokens are given by ``mask`` (bool ``(B, N)``, True = masked) or by their
        indices ``visible_ids`` (from :func:`~videomae.models.masking.split_mask`).
        """
        return self.encoder(video, mask, visible_ids=visible_ids)

    def forward_decoder(
        self, latent: torch.Tensor, visible_ids: torch.Tensor, decoded_ids: torch.Tensor
    ) -> torch.Tensor:
        """Predict the pixels of the ``decoded_ids`` tokens from the visible tokens' features.

        Args:
            latent: encoder output ``(B, N - M, embed_dim)``.
            visible_ids: long ``(B, N - M)`` ascending visible token indices.
            decoded_ids: long ``(B, K)`` ascending indices of the tokens the decoder
                reconstructs (the masked ones; with dual masking the ones it keeps), which
                get the mask token.

        Returns:
            ``(B, K, tubelet * p * p * 3)``.
        """
        x_vis = self.encoder_to_decoder(latent)
        pos = self.pos_embed.to(dtype=x_vis.dtype)
        x_full = torch.cat(
            (
                x_vis + gather_tokens(pos, visible_ids),
                self.mask_token.to(x_vis.dtype) + gather_tokens(pos, decoded_ids),
            ),
            dim=1,
        )
        return self.decoder(x_full, decoded_ids.shape[1])

    def forward_loss(
        self,
        video: torch.Tensor,
        pred: torch.Tensor,
        decoded_ids: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Mean squared error of ``pred`` against :func:`pixel_target`, over the decoded tokens
        that are masked for the encoder (with V1 masking: all of them), as a float32 scalar."""
        target = self.pixel_target(video, decoded_ids)
        weight = torch.gather(mask, 1, decoded_ids).float()  # 1 = masked for the encoder
        error = (pred.float() - target).pow(2).mean(dim=-1)
        return (error * weight).sum() / weight.sum().clamp_min(1.0)

    def forward(
        self,
        video: torch.Tensor,
        mask: torch.Tensor,
        decoder_mask: torch.Tensor | None = None,
        counts: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked reconstruction: ``loss`` (float32 scalar) and ``pred``.

        :meth:`forward_encoder` on the visible tokens, :meth:`forward_decoder` on the tokens the
        decoder reconstructs, :meth:`forward_loss` on those of them that are masked.

        Without ``decoder_mask`` (VideoMAE V1; the same as ``decoder_mask=~mask``) the decoder
        reconstructs every masked token: ``pred`` is ``(B, M, t * p * p * 3)`` for the ``M``
        masked tokens in ascending order and ``loss`` their mean squared error.

        With ``decoder_mask`` (VideoMAE V2 dual masking, as the official
        ``PretrainVisionTransformer.forward(x, mask, decode_mask)`` and its training loop): the
        decoder gets the visible tokens' features plus one mask token for every token it
        *keeps* (``~decoder_mask``, the same count ``K`` per clip), whether or not the encoder
        saw it; ``pred`` is ``(B, K, t * p * p * 3)`` for the kept tokens in ascending token
        order, and ``loss`` the squared error averaged over the kept tokens that are also
        masked for the encoder (``mask & ~decoder_mask``; a kept visible token's prediction gets
        no loss), summed over the batch and divided by their total count.

        Args:
            video: ImageNet-normalized ``(B, 3, T, H, W)``.
            mask: bool ``(B, N)``, True = masked for the encoder, the same count per clip
                (ValueError otherwise).
            decoder_mask: optional bool ``(B, N)``, True = dropped by the decoder (not
                reconstructed), False = kept; the same number kept per clip (ValueError
                otherwise).
            counts: the True count per row of ``mask`` and of ``decoder_mask`` (the second
                unused without it) when known, as the mask generators' ``pair_counts`` give
                them: the masks are then split without reading the counts from the device
                (no host-device sync, no graph break under ``torch.compile``).
        """
        if decoder_mask is None:
            count = None if counts is None else counts[0]
            visible_ids, decoded_ids = split_mask(mask, self.num_patches, count)
        else:  # the kept tokens are the decoder mask's "visible" ones
            (visible_ids, _), (decoded_ids, _) = split_masks(
                mask, decoder_mask, num_tokens=self.num_patches, counts=counts
            )
        latent = self.forward_encoder(video, visible_ids=visible_ids)
        pred = self.forward_decoder(latent, visible_ids, decoded_ids)
        return self.forward_loss(video, pred, decoded_ids, mask), pred

    # ------------------------------------------------------------------ target
    def pixel_target(self, video: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """:func:`pixel_target` of every token of ``video`` (or of tokens ``ids``) with this
        network's geometry."""
        return pixel_target(
            video, self.tubelet_size, self.patch_size, self.normalize_target, ids=ids
        )

    def target(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The regression target of the masked tokens, float32 ``(B, M, tubelet * p * p * 3)``,
        in ascending token order (``mask``: bool ``(B, N)``, True = masked)."""
        _, masked_ids = split_mask(mask, self.num_patches)
        return self.pixel_target(video, masked_ids)
