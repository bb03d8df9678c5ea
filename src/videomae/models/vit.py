"""Vision Transformer pieces for video: tubelet embedding, position table, blocks and encoder.

Parameter names follow the official VideoMAE code (``patch_embed.proj``, ``blocks.N.norm1``,
``blocks.N.attn.qkv``, ``attn.q_bias``, ``attn.v_bias``, ``attn.proj``, ``norm2``, ``mlp.fc1``,
``mlp.fc2``, ``gamma_1``/``gamma_2``, ``norm``) so that official checkpoints load as they are.
Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` (flash / memory
efficient kernels where available) instead of the official explicit softmax; the ``attention``
option (:data:`ATTENTION_BACKENDS`) lets PyTorch choose the kernel or pins one.

Tensor shapes: a video is ``(B, C, T, H, W)``; tokens are ``(B, N, D)`` with ``N = T' * H' * W'``,
``T' = T / tubelet_size``, ``H' = H / patch_size``, ``W' = W / patch_size``, in ``(t h w)`` order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from videomae.models.config import ModelConfig, as_pair, token_grid
from videomae.models.masking import split_mask

ATTENTION_BACKENDS: dict[str, SDPBackend | None] = {
    "auto": None,
    "math": SDPBackend.MATH,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}
"""Values of the ``attention`` option: ``auto`` lets PyTorch's SDPA dispatcher choose the kernel;
the others pin one SDPA backend with :func:`torch.nn.attention.sdpa_kernel`. ``math`` runs
everywhere; ``flash`` runs on CUDA (fp16/bf16) and on CPU (PyTorch's CPU flash kernel, which is
also what ``auto`` picks there); ``efficient`` and ``cudnn`` run on CUDA only."""


def check_attention(attention: str) -> str:
    """``attention`` if it is one of :data:`ATTENTION_BACKENDS`; ValueError naming the option."""
    if attention not in ATTENTION_BACKENDS:
        raise ValueError(
            f"attention must be one of {', '.join(ATTENTION_BACKENDS)}; got {attention!r}"
        )
    return attention


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """The fixed sinusoidal position table of the official VideoMAE code.

    Entry ``[0, pos, i]`` is ``sin(pos / 10000 ** (2 * (i // 2) / dim))`` for even ``i`` and the
    cosine of the same angle for odd ``i``. Computed in float64 (as the official numpy code) and
    returned as float32.

    Returns:
        float32 ``(1, num_positions, dim)``.
    """
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    exponent = 2.0 * torch.div(torch.arange(dim), 2, rounding_mode="floor").to(torch.float64) / dim
    angle = position / torch.pow(10000.0, exponent)[None, :]
    table = torch.empty_like(angle)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.to(torch.float32)[None]


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Select tokens ``ids`` of each clip: ``x`` (B, N, D), ``ids`` long (B, K) -> (B, K, D).

    ``x`` may have batch size 1 (a shared table such as the position table); it is broadcast.
    """
    if x.shape[0] != ids.shape[0]:
        x = x.expand(ids.shape[0], -1, -1)
    return torch.gather(x, 1, ids[:, :, None].expand(-1, -1, x.shape[-1]))


class PatchEmbed(nn.Module):
    """Tubelet embedding: a Conv3d with kernel = stride = ``(tubelet_size, patch, patch)``.

    Args:
        img_size: frame size ``H`` (= ``W``) or ``(H, W)``; must be divisible by ``patch_size``.
        patch_size: spatial patch side.
        num_frames: frames per clip ``T``; must be divisible by ``tubelet_size``.
        tubelet_size: frames per tubelet.
        in_chans: input channels ``C``.
        embed_dim: token width ``D``.

    Maps ``(B, C, T, H, W)`` to ``(B, N, D)`` with tokens in ``(t h w)`` order.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        num_frames: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        embed_dim: int = 768,
    ) -> None:
        super().__init__()
        height, width = as_pair(img_size)
        if patch_size <= 0 or height % patch_size or width % patch_size:
            raise ValueError(
                f"img_size {height}x{width} must be divisible by patch_size {patch_size}"
            )
        if tubelet_size <= 0 or num_frames <= 0 or num_frames % tubelet_size:
            raise ValueError(
                f"num_frames {num_frames} must be a positive multiple of "
                f"tubelet_size {tubelet_size}"
            )
        self.img_size = (height, width)
        self.patch_size = patch_size
        self.num_frames = num_frames
        self.tubelet_size = tubelet_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.proj = nn.Conv3d(
            in_chans,
            embed_dim,
            kernel_size=(tubelet_size, patch_size, patch_size),
            stride=(tubelet_size, patch_size, patch_size),
        )

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """The token grid ``(T', H', W')``."""
        return token_grid(self.img_size, self.num_frames, self.patch_size, self.tubelet_size)

    @property
    def num_patches(self) -> int:
        """Tokens per clip ``N = T' * H' * W'``."""
        return math.prod(self.grid_size)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, N, D)``; ValueError if the clip shape is not the model's.

        Computed as one matrix product over the flattened tubelets with ``proj``'s weight viewed
        as ``(D, C t p p)``: the Conv3d's numbers (kernel = stride, no overlap) without its slow
        implicit-GEMM kernel on GPUs. ``proj`` stays a ``Conv3d`` so checkpoints keep its name
        and shape.
        """
        expected = (self.in_chans, self.num_frames, *self.img_size)
        if video.ndim != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(
                f"expected a video (B, C, T, H, W) with (C, T, H, W) = {expected}, "
                f"got {tuple(video.shape)}"
            )
        b, c = video.shape[:2]
        (nt, nh, nw), t, p = self.grid_size, self.tubelet_size, self.patch_size
        tubelets = (
            video.reshape(b, c, nt, t, nh, p, nw, p)
            .permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, t, p, p): (t h w) token order
            .reshape(b, nt * nh * nw, c * t * p * p)
        )
        return F.linear(tubelets, self.proj.weight.reshape(self.embed_dim, -1), self.proj.bias)


class Mlp(nn.Module):
    """Two-layer perceptron ``fc1 -> GELU -> fc2``, optional dropout: ``(..., D) -> (..., D)``."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP token-wise."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention with the official VideoMAE parameter layout.

    One fused ``qkv`` projection without bias, plus learnable ``q_bias`` and ``v_bias`` (zeros at
    init) when ``qkv_bias``; the key bias is fixed to zero (as in BEiT / VideoMAE). The attention
    itself is :func:`torch.nn.functional.scaled_dot_product_attention`.

    Args:
        dim: token width ``D``.
        num_heads: attention heads.
        qkv_bias: learn query and value biases.
        qk_scale: softmax scale; default ``head_dim ** -0.5``.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
        head_dim: per-head width (official ``attn_head_dim``); default ``dim // num_heads``.
        attention: SDPA backend, one of :data:`ATTENTION_BACKENDS` (``auto`` = PyTorch chooses).

    Maps ``(B, N, D)`` to ``(B, N, D)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        head_dim: int | None = None,
        attention: str = "auto",
    ) -> None:
        super().__init__()
        self.attention = check_attention(attention)
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
            head_dim = dim // num_heads
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.scale = qk_scale if qk_scale is not None else head_dim**-0.5
        all_head_dim = head_dim * num_heads
        self.qkv = nn.Linear(dim, all_head_dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(all_head_dim))
            self.v_bias = nn.Parameter(torch.zeros(all_head_dim))
        else:
            self.q_bias = None
            self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(all_head_dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def fused_bias(self) -> torch.Tensor | None:
        """The bias ``[q_bias, 0, v_bias]`` ``(3 * heads * head_dim,)``; None without biases."""
        if self.q_bias is None:
            return None
        return torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention over the tokens of each clip: ``(B, N, D) -> (B, N, D)``."""
        batch_size, n, _ = x.shape
        qkv = F.linear(x, self.qkv.weight, self.fused_bias())
        qkv = qkv.reshape(batch_size, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        x = self.attend(q, k, v)
        x = x.transpose(1, 2).reshape(batch_size, n, self.num_heads * self.head_dim)
        return self.proj_drop(self.proj(x))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Scaled dot-product attention on the backend chosen by ``attention``.

        Args:
            q, k, v: ``(B, heads, N, head_dim)``.

        Returns:
            ``(B, heads, N, head_dim)``. A pinned backend that cannot run these inputs (device,
            dtype, head size) raises RuntimeError naming the ``attention`` option, with PyTorch's
            reason appended.
        """
        dropout_p = self.attn_drop if self.training else 0.0
        backend = ATTENTION_BACKENDS[self.attention]
        if backend is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=self.scale)
        try:
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(
                    q, k, v, dropout_p=dropout_p, scale=self.scale
                )
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as error:
            raise RuntimeError(
                f"attention={self.attention!r} pins the SDPA backend {backend.name}, which cannot "
                f"run on {q.device.type} {q.dtype} inputs with head_dim {q.shape[-1]}; set "
                f"attention to 'auto' (PyTorch chooses) or 'math' (runs everywhere). "
                f"PyTorch: {error}"
            ) from error


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch per sample with probability ``drop_prob``.

    Kept samples are scaled by ``1 / (1 - drop_prob)``; the identity in eval mode. ``(B, ...)``.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Drop whole samples of ``x`` ``(B, ...)`` during training."""
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``.

    With ``init_values > 0`` each branch is scaled by a learned per-channel layer scale
    (``gamma_1``, ``gamma_2``, initialized to ``init_values``), as in the official code.

    Args:
        dim: token width ``D``.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``dim`` (hidden = ``int(dim * mlp_ratio)``).
        qkv_bias: learn query/value biases.
        qk_scale: attention scale override.
        drop: dropout in the MLP and after the attention projection.
        attn_drop: dropout on the attention weights.
        drop_path: stochastic-depth probability of both branches.
        init_values: layer-scale init; 0 disables layer scale.
        norm_eps: LayerNorm epsilon.
        head_dim: per-head width override.
        attention: SDPA backend, one of :data:`ATTENTION_BACKENDS`.

    Maps ``(B, N, D)`` to ``(B, N, D)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        init_values: float = 0.0,
        norm_eps: float = 1e-6,
        head_dim: int | None = None,
        attention: str = "auto",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            attn_drop=attn_drop,
            proj_drop=drop,
            head_dim=head_dim,
            attention=attention,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        if init_values and init_values > 0:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(init_values)))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(init_values)))
        else:
            self.gamma_1 = None
            self.gamma_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One block on tokens ``(B, N, D)``."""
        if self.gamma_1 is None:
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


def init_vit_weights(module: nn.Module) -> None:
    """The official initialization, for ``module.apply``.

    Linear: xavier-uniform weight, zero bias; LayerNorm: weight 1, bias 0. Conv3d (the tubelet
    embedding) keeps PyTorch's default initialization, as in the official code.
    """
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def run_blocks(
    blocks: nn.ModuleList, x: torch.Tensor, grad_checkpointing: bool, training: bool
) -> torch.Tensor:
    """Run ``blocks`` in order on ``x`` ``(B, N, D)``.

    With ``grad_checkpointing`` (and in training with grad enabled) each block's activations are
    recomputed in the backward pass (``torch.utils.checkpoint``, non-reentrant; the RNG state is
    restored so that dropout and drop-path draw the same values).
    """
    use_checkpoint = grad_checkpointing and training and torch.is_grad_enabled()
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False) if use_checkpoint else block(x)
    return x


def no_weight_decay_names(model: nn.Module, always: tuple[str, ...] = ()) -> set[str]:
    """Names of ``model``'s parameters to train without weight decay.

    Every 1-D parameter (LayerNorm weights and biases, ``q_bias``/``v_bias``, layer-scale
    ``gamma``s), every name ending in ``.bias``, and the names in ``always`` that exist -- the rule
    of the official optimizer factory.
    """
    names = {name for name, _ in model.named_parameters() if name in always}
    for name, param in model.named_parameters():
        if param.ndim <= 1 or name.endswith(".bias"):
            names.add(name)
    return names


class ClipGeometry:
    """The clip geometry of a network, read from its typed config (``self.config``, a
    :class:`~videomae.models.config.ModelConfig`)."""

    config: ModelConfig

    @property
    def img_size(self) -> int | tuple[int, int]:
        """Frame size as given to the constructor."""
        return self.config.img_size

    @property
    def patch_size(self) -> int:
        """Spatial patch side."""
        return self.config.patch_size

    @property
    def tubelet_size(self) -> int:
        """Frames per tubelet."""
        return self.config.tubelet_size

    @property
    def num_frames(self) -> int:
        """Frames per clip."""
        return self.config.num_frames


class VisionTransformerTrunk(nn.Module):
    """Tubelet embedding + positions + blocks + final norm, as top-level submodules.

    The parameters shared by the pretraining encoder (:class:`VisionTransformerEncoder`, which the
    pretraining network holds as ``encoder``) and the fine-tuning classifier
    (:class:`videomae.models.classifier.VideoMAEClassifier`, whose official checkpoints have these
    names at the top level): ``patch_embed``, ``pos_embed`` (buffer or parameter), ``blocks``,
    ``norm``. It has no ``forward``; subclasses define what they return.

    By default the position table is the fixed sinusoidal one, a non-persistent buffer rebuilt
    from the model's own grid (not in the state dict, as in the official code where it is a plain
    tensor). ``learnable_pos_embed`` makes it a Parameter ``pos_embed`` (official
    ``use_learnable_pos_emb``), initialized from a normal with std 0.02.

    Args:
        img_size, patch_size, num_frames, tubelet_size, in_chans: the clip and tubelet geometry.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, qk_scale, head_dim: the transformer.
        drop_rate: dropout after the position embedding, in the MLPs and attention projections.
        attn_drop_rate: attention-weight dropout.
        drop_path_rate: stochastic depth, rising linearly from 0 to this value over the blocks.
        init_values: layer-scale init (0 = none).
        norm_eps: LayerNorm epsilon (1e-6 in the official models).
        final_norm: end with ``norm``; False makes ``norm`` an Identity (fine-tuning with mean
            pooling and ``fc_norm``, as the official classifier).
        learnable_pos_embed: learn the position embedding instead of the fixed sinusoidal table.
        grad_checkpointing: recompute block activations in backward during training.
        attention: SDPA backend of every block, one of :data:`ATTENTION_BACKENDS`.
    """

    pos_embed: torch.Tensor  # (1, N, D): a buffer, or a Parameter with learnable_pos_embed

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
        qk_scale: float | None = None,
        head_dim: int | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        init_values: float = 0.0,
        norm_eps: float = 1e-6,
        final_norm: bool = True,
        learnable_pos_embed: bool = False,
        grad_checkpointing: bool = False,
        attention: str = "auto",
    ) -> None:
        super().__init__()
        check_attention(attention)
        self.embed_dim = embed_dim
        self.grad_checkpointing = grad_checkpointing
        self.patch_embed = PatchEmbed(
            img_size=img_size,
            patch_size=patch_size,
            num_frames=num_frames,
            tubelet_size=tubelet_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
        )
        if learnable_pos_embed:
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, embed_dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        else:
            self.register_buffer(
                "pos_embed", sinusoid_table(self.num_patches, embed_dim), persistent=False
            )
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth else []
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=rate,
                init_values=init_values,
                norm_eps=norm_eps,
                head_dim=head_dim,
                attention=attention,
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps) if final_norm else nn.Identity()
        self.apply(init_vit_weights)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """The token grid ``(T', H', W')``."""
        return self.patch_embed.grid_size

    @property
    def num_patches(self) -> int:
        """Tokens per clip ``N``."""
        return self.patch_embed.num_patches

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        """Tokens with positions: video ``(B, C, T, H, W)`` -> ``(B, N, D)``."""
        x = self.patch_embed(video)
        return self.pos_drop(x + self.pos_embed.to(dtype=x.dtype))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The blocks and the final norm on tokens ``(B, K, D)`` -> ``(B, K, D)``."""
        x = run_blocks(self.blocks, x, self.grad_checkpointing, self.training)
        return self.norm(x)


class VisionTransformerEncoder(VisionTransformerTrunk):
    """The VideoMAE pretraining encoder: the trunk, run on all tokens or on the visible ones.

    Given a mask it runs the blocks on the visible tokens only, gathered in ascending token order.
    The arguments are those of :class:`VisionTransformerTrunk`.
    """

    def forward(
        self,
        video: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        visible_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode a clip, or only its visible tokens.

        Args:
            video: ``(B, C, T, H, W)``.
            mask: optional bool ``(B, N)``, True = masked; the same count in every row
                (ValueError otherwise).
            visible_ids: optional long ``(B, N_visible)`` visible token indices, ascending (from
                :func:`videomae.models.masking.split_mask`); used instead of ``mask``.

        Returns:
            ``(B, N, D)`` without a mask, else ``(B, N_visible, D)`` in ascending token order.
        """
        x = self.embed(video)
        if visible_ids is None and mask is not None:
            visible_ids, _ = split_mask(mask, self.num_patches)
        if visible_ids is not None:
            x = gather_tokens(x, visible_ids)
        return self.forward_tokens(x)
