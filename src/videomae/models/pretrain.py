"""The VideoMAE pretraining network: encoder on visible tokens, light decoder, pixel target, loss.

The layout and names follow the official ``PretrainVisionTransformer`` (``encoder.*``,
``encoder_to_decoder``, ``mask_token``, ``decoder.blocks.N.*``, ``decoder.norm``, ``decoder.head``),
so an official pretraining checkpoint loads with ``load_state_dict`` as it is; the position tables
are non-persistent buffers, not in the state dict.

One step, with ``B`` clips, ``N`` tokens of which ``M`` are masked (the same ``M`` per clip)::

    video (B, 3, T, H, W) --encoder on visible tokens--> (B, N - M, D_enc)
      --encoder_to_decoder--> (B, N - M, D_dec) + decoder positions of the visible tokens
      ++ mask_token + decoder positions of the masked tokens      -> (B, N, D_dec)
      --decoder blocks, norm + head on the last M tokens--> pred (B, M, tubelet * p * p * 3)
    loss = MSE(pred, target(video, mask))

Visible tokens come first and masked tokens after, each group in ascending token order, as in the
official code; ``pred`` is therefore in ascending token order of the masked tokens.

With VideoMAE V2 dual masking (``model(video, mask, decoder_mask=...)``), mask tokens go to the
tokens the decoder keeps (``~decoder_mask``) and the loss covers ``mask & ~decoder_mask``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from videomae.constants import IMAGENET_MEAN, IMAGENET_STD
from videomae.models.masking import split_mask
from videomae.models.vit import (
    Block,
    ClipGeometry,
    VisionTransformerEncoder,
    check_attention,
    gather_tokens,
    init_vit_weights,
    no_weight_decay_names,
    run_blocks,
    sinusoid_table,
)

TARGET_EPS = 1e-6
"""Added to the per-tubelet standard deviation of the normalized target (official value)."""


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

    The clip geometry (``img_size``, ``num_frames``, ``patch_size``, ``tubelet_size``) is given
    here once and read back through the properties by the mask generator and the target.

    Args:
        img_size: frame side (or ``(H, W)``), divisible by ``patch_size``.
        patch_size: spatial patch side.
        num_frames: frames per clip, divisible by ``tubelet_size``.
        tubelet_size: frames per tubelet.
        in_chans: must be 3 (the target undoes the RGB ImageNet normalization).
        embed_dim, depth, num_heads: encoder width, blocks, heads.
        mlp_ratio: MLP width ratio of encoder and decoder blocks.
        qkv_bias: learn query/value biases.
        decoder_embed_dim, decoder_depth, decoder_num_heads: the decoder.
        norm_eps: LayerNorm epsilon (1e-6 in the official models).
        decoder_norm_eps: epsilon of the decoder's final ``norm`` only (official 1e-6; HF
            transformers' ``VideoMAEForPreTraining`` uses 1e-5 there).
        drop_path_rate: stochastic depth of encoder and decoder (linear over the blocks).
        init_values: layer-scale init (0 = none).
        normalize_target: regress per-tubelet normalized pixels (the paper's default).
        grad_checkpointing: recompute block activations in backward during training.
        attention: SDPA backend of encoder and decoder blocks: ``auto`` (PyTorch chooses),
            ``math``, ``flash``, ``efficient`` or ``cudnn`` (pinned; see
            :data:`videomae.models.vit.ATTENTION_BACKENDS`).
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
        if in_chans != 3:
            raise ValueError(
                f"in_chans must be 3 (the target undoes the RGB ImageNet normalization), "
                f"got {in_chans}"
            )
        self.config = {
            "img_size": img_size if isinstance(img_size, int) else tuple(img_size),
            "patch_size": patch_size,
            "num_frames": num_frames,
            "tubelet_size": tubelet_size,
            "in_chans": in_chans,
            "embed_dim": embed_dim,
            "depth": depth,
            "num_heads": num_heads,
            "mlp_ratio": mlp_ratio,
            "qkv_bias": qkv_bias,
            "decoder_embed_dim": decoder_embed_dim,
            "decoder_depth": decoder_depth,
            "decoder_num_heads": decoder_num_heads,
            "norm_eps": norm_eps,
            "drop_path_rate": drop_path_rate,
            "init_values": init_values,
            "normalize_target": normalize_target,
            "grad_checkpointing": grad_checkpointing,
            "attention": check_attention(attention),
            "decoder_norm_eps": decoder_norm_eps,
        }  # the constructor arguments, saved in checkpoints to rebuild the network
        self.normalize_target = normalize_target
        self.encoder = VisionTransformerEncoder(
            img_size=img_size,
            patch_size=patch_size,
            num_frames=num_frames,
            tubelet_size=tubelet_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            init_values=init_values,
            norm_eps=norm_eps,
            grad_checkpointing=grad_checkpointing,
            attention=attention,
        )
        self.decoder = PretrainDecoder(
            embed_dim=decoder_embed_dim,
            depth=decoder_depth,
            num_heads=decoder_num_heads,
            out_dim=tubelet_size * patch_size * patch_size * in_chans,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            init_values=init_values,
            norm_eps=norm_eps,
            grad_checkpointing=grad_checkpointing,
            attention=attention,
            final_norm_eps=decoder_norm_eps,
        )
        # Default nn.Linear init, as the official model (its _init_weights is not applied here).
        self.encoder_to_decoder = nn.Linear(embed_dim, decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        # Official trunc_normal_: std 0.02, truncated at +-1 std.
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)
        self.register_buffer(
            "pos_embed", sinusoid_table(self.num_patches, decoder_embed_dim), persistent=False
        )

    # ------------------------------------------------------------------ geometry
    @property
    def grid_size(self) -> tuple[int, int, int]:
        """The token grid ``(T', H', W')`` the mask generator draws on."""
        return self.encoder.grid_size

    @property
    def num_patches(self) -> int:
        """Tokens per clip ``N = T' * H' * W'``."""
        return self.encoder.num_patches

    @property
    def grad_checkpointing(self) -> bool:
        """Whether encoder and decoder blocks recompute their activations in backward."""
        return self.encoder.grad_checkpointing

    @grad_checkpointing.setter
    def grad_checkpointing(self, value: bool) -> None:
        self.encoder.grad_checkpointing = bool(value)
        self.decoder.grad_checkpointing = bool(value)
        self.config["grad_checkpointing"] = bool(value)

    def no_weight_decay(self) -> set[str]:
        """Names of the parameters trained without weight decay.

        ``mask_token``, plus every 1-D parameter (LayerNorm weights and biases, all biases,
        ``q_bias``/``v_bias``, layer-scale ``gamma``s) -- the rule of the official optimizer
        factory (``ndim == 1`` or a name ending in ``.bias`` or a name in this list).
        """
        return no_weight_decay_names(self, always=("mask_token",))

    # ------------------------------------------------------------------ target
    def pixel_tubelets(self, video: torch.Tensor) -> torch.Tensor:
        """The RGB pixels in [0, 1] of every token: float32 ``(B, N, tubelet * p * p, 3)``.

        Undo the ImageNet normalization and cut into tubelets in ``(t h w)`` token order, the
        pixels of a token laid out ``(p0 p1 p2)`` (frame in the tubelet, row, column). Computed
        without autocast and without gradients. :meth:`unpatchify` is the inverse.
        """
        batch_size, chans, frames, height, width = video.shape
        t, p = self.tubelet_size, self.patch_size
        with torch.no_grad(), torch.autocast(device_type=video.device.type, enabled=False):
            # Built per call in float32 (a buffer would follow a module-wide cast to bf16).
            mean = torch.tensor(IMAGENET_MEAN, device=video.device).view(1, 3, 1, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=video.device).view(1, 3, 1, 1, 1)
            pixels = video.float() * std + mean
            pixels = pixels.reshape(
                batch_size, chans, frames // t, t, height // p, p, width // p, p
            )
            # (b, c, T', p0, H', p1, W', p2) -> (b, T', H', W', p0, p1, p2, c)
            return pixels.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(batch_size, -1, t * p * p, chans)

    def unpatchify(self, tubelets: torch.Tensor) -> torch.Tensor:
        """Frames ``(B, 3, T, H, W)`` from per-token pixels ``(B, N, tubelet * p * p * 3)`` (or
        ``(B, N, tubelet * p * p, 3)``) laid out as :meth:`pixel_tubelets` makes them."""
        t, p = self.tubelet_size, self.patch_size
        grid_t, grid_h, grid_w = self.grid_size
        batch_size = tubelets.shape[0]
        x = tubelets.reshape(batch_size, grid_t, grid_h, grid_w, t, p, p, 3)
        # (b, T', H', W', p0, p1, p2, c) -> (b, c, T', p0, H', p1, W', p2)
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(batch_size, 3, grid_t * t, grid_h * p, grid_w * p)

    def _patchify_target(self, video: torch.Tensor) -> torch.Tensor:
        """The float32 regression target of every token: ``(B, N, tubelet * p * p * 3)``.

        :meth:`pixel_tubelets` (ImageNet normalization undone, ``(p0 p1 p2 c)`` layout), and with
        ``normalize_target`` each channel standardized over the tubelet's pixels (mean,
        unbiased std + 1e-6). Computed without autocast and without gradients.
        """
        pixels = self.pixel_tubelets(video)
        with torch.no_grad(), torch.autocast(device_type=video.device.type, enabled=False):
            if self.normalize_target:
                tube_mean = pixels.mean(dim=-2, keepdim=True)
                tube_std = pixels.var(dim=-2, unbiased=True, keepdim=True).sqrt()
                pixels = (pixels - tube_mean) / (tube_std + TARGET_EPS)
            return pixels.reshape(pixels.shape[0], pixels.shape[1], -1)

    @torch.no_grad()
    def reconstruct(
        self,
        video: torch.Tensor,
        mask: torch.Tensor,
        pred: torch.Tensor,
        decoder_mask: torch.Tensor | None = None,
        fill: float = 0.5,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pictures of a masked reconstruction: ``(masked_input, reconstruction)`` in [0, 1].

        Both are float32 ``(B, 3, T, H, W)`` RGB frames. ``masked_input`` is the clip with the
        tokens masked for the encoder painted ``fill`` (grey). ``reconstruction`` keeps the
        visible tokens' original pixels and puts the decoder's prediction on the masked ones;
        with ``normalize_target`` the prediction is in per-tubelet standardized units and is
        mapped back with the *original* tubelet's per-channel mean and std (``pred * (std +
        1e-6) + mean``, as the official VideoMAE visualization does: the picture shows the
        structure the model predicted, at the true brightness). With dual masking
        (``decoder_mask``), masked tokens that the decoder does not reconstruct stay ``fill``.

        Args:
            video: ImageNet-normalized ``(B, 3, T, H, W)``.
            mask: bool ``(B, N)``, True = masked for the encoder.
            pred: the network's prediction for ``mask`` (and ``decoder_mask``): ``(B, M, D)``
                for the masked tokens (V1), ``(B, K, D)`` for the kept tokens (dual masking).
            decoder_mask: bool ``(B, N)``, True = not reconstructed by the decoder, or None.
            fill: grey level of hidden tokens.
        """
        pixels = self.pixel_tubelets(video)  # (B, N, t*p*p, 3)
        batch_size, num_tokens = pixels.shape[:2]
        if decoder_mask is None:
            predicted_ids = split_mask(mask, num_tokens)[1]  # masked tokens, ascending
        else:
            predicted_ids = split_mask(decoder_mask, num_tokens)[0]  # kept tokens, ascending
        pred = pred.float().reshape(batch_size, predicted_ids.shape[1], -1, 3)
        if self.normalize_target:
            originals = torch.gather(
                pixels, 1, predicted_ids[:, :, None, None].expand(-1, -1, *pixels.shape[2:])
            )
            mean = originals.mean(dim=-2, keepdim=True)
            std = originals.var(dim=-2, unbiased=True, keepdim=True).sqrt()
            pred = pred * (std + TARGET_EPS) + mean
        hidden = mask[:, :, None, None]
        masked_input = torch.where(hidden, torch.full_like(pixels, fill), pixels)
        recon = masked_input.clone()
        index = predicted_ids[:, :, None, None].expand(-1, -1, *pixels.shape[2:])
        predicted = torch.zeros_like(pixels).scatter(1, index, pred)
        has_pred = torch.zeros_like(mask).scatter(1, predicted_ids, True)
        use_pred = (mask & has_pred)[:, :, None, None]
        recon = torch.where(use_pred, predicted, recon)
        return (
            self.unpatchify(masked_input).clamp(0, 1),
            self.unpatchify(recon).clamp(0, 1),
        )

    def target(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The regression target of the masked tokens, float32 ``(B, M, tubelet * p * p * 3)``.

        Args:
            video: ImageNet-normalized ``(B, 3, T, H, W)``.
            mask: bool ``(B, N)``, True = masked, the same count per clip.

        Returns:
            The masked tokens' targets in ascending token order.
        """
        _, masked_ids = split_mask(mask, self.num_patches)
        return gather_tokens(self._patchify_target(video), masked_ids)

    # ------------------------------------------------------------------ forward
    def forward_encoder(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encoder features of the visible tokens: ``(B, N - M, embed_dim)``, ascending order."""
        return self.encoder(video, mask)

    def forward_decoder(
        self, x_vis: torch.Tensor, visible_ids: torch.Tensor, masked_ids: torch.Tensor
    ) -> torch.Tensor:
        """Predict the masked tokens' pixels from the visible tokens' features.

        Args:
            x_vis: encoder output ``(B, N - M, embed_dim)``.
            visible_ids: long ``(B, N - M)`` ascending visible token indices.
            masked_ids: long ``(B, M)`` ascending masked token indices (with dual masking,
                the tokens the decoder keeps), which get the mask token.

        Returns:
            ``(B, M, tubelet * p * p * 3)``.
        """
        x_vis = self.encoder_to_decoder(x_vis)
        pos = self.pos_embed.to(dtype=x_vis.dtype)
        x_full = torch.cat(
            (
                x_vis + gather_tokens(pos, visible_ids),
                self.mask_token.to(x_vis.dtype) + gather_tokens(pos, masked_ids),
            ),
            dim=1,
        )
        return self.decoder(x_full, masked_ids.shape[1])

    def forward(
        self, video: torch.Tensor, mask: torch.Tensor, decoder_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked reconstruction: ``loss`` (float32 scalar) and ``pred``.

        Without ``decoder_mask`` (VideoMAE V1): ``pred`` is ``(B, M, t * p * p * 3)`` for the
        ``M`` masked tokens in ascending order and ``loss`` their mean squared error.

        With ``decoder_mask`` (VideoMAE V2 dual masking, as the official
        ``PretrainVisionTransformer.forward(x, mask, decode_mask)`` and its training loop): the
        decoder gets the visible tokens' features plus one mask token for every token the
        decoder *keeps* (``~decoder_mask``, the same count ``K`` per clip), whether or not the
        encoder saw it; ``pred`` is ``(B, K, t * p * p * 3)`` for the kept tokens in ascending
        token order, and ``loss`` the squared error averaged over the kept tokens that are also
        masked for the encoder (``mask & ~decoder_mask``; a kept visible token's prediction gets
        no loss), summed over the batch and divided by their total count. ``decoder_mask=~mask``
        gives the V1 loss and prediction.

        Args:
            video: ImageNet-normalized ``(B, 3, T, H, W)``.
            mask: bool ``(B, N)``, True = masked for the encoder, the same count per clip
                (ValueError otherwise).
            decoder_mask: optional bool ``(B, N)``, True = dropped by the decoder (not
                reconstructed), False = kept; the same number kept per clip (ValueError
                otherwise).
        """
        visible_ids, masked_ids = split_mask(mask, self.num_patches)
        x_vis = self.encoder(video, visible_ids=visible_ids)
        if decoder_mask is not None:
            return self._forward_dual(video, mask, decoder_mask, x_vis, visible_ids)
        pred = self.forward_decoder(x_vis, visible_ids, masked_ids)
        target = gather_tokens(self._patchify_target(video), masked_ids)
        loss = F.mse_loss(pred.float(), target)
        return loss, pred

    def _forward_dual(
        self,
        video: torch.Tensor,
        mask: torch.Tensor,
        decoder_mask: torch.Tensor,
        x_vis: torch.Tensor,
        visible_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder and loss of dual masking; see :meth:`forward`."""
        if decoder_mask.shape != mask.shape:
            raise ValueError(
                f"decoder_mask must have the shape of mask {tuple(mask.shape)}, "
                f"got {tuple(decoder_mask.shape)}"
            )
        try:
            kept_ids, _ = split_mask(decoder_mask, self.num_patches)  # (B, K) ascending
        except ValueError as error:
            raise ValueError(f"decoder_mask: {error}") from error
        pred = self.forward_decoder(x_vis, visible_ids, kept_ids)
        target = gather_tokens(self._patchify_target(video), kept_ids)
        weight = torch.gather(mask, 1, kept_ids).float()  # (B, K): 1 = masked for the encoder
        error = (pred.float() - target).pow(2).mean(dim=-1)
        loss = (error * weight).sum() / weight.sum().clamp_min(1.0)
        return loss, pred
