"""The pretraining network: target, shapes, names, attention, training signal, HF equivalence."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hf_utils import hf_to_official
from videomae.constants import IMAGENET_MEAN, IMAGENET_STD
from videomae.models.masking import TubeMasking
from videomae.models.pretrain import VideoMAEPretrain
from videomae.models.registry import SIZES, BackboneSize, create_pretrain, get_size
from videomae.models.vit import (
    Attention,
    Block,
    PatchEmbed,
    VisionTransformerEncoder,
    sinusoid_table,
)

SMALL = {
    "img_size": 32,
    "patch_size": 8,
    "num_frames": 4,
    "tubelet_size": 2,
    "embed_dim": 48,
    "depth": 2,
    "num_heads": 3,
    "decoder_embed_dim": 32,
    "decoder_depth": 1,
    "decoder_num_heads": 2,
}
"""A few-thousand-parameter model: grid (2, 4, 4), 32 tokens, 384 pixels per token."""


def _seeded(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _mask(model: VideoMAEPretrain, batch_size: int, ratio: float = 0.75, seed: int = 0):
    return TubeMasking(ratio)(batch_size, model.grid_size, device="cpu", generator=_seeded(seed))


# ---------------------------------------------------------------------------- position table
def test_sinusoid_table_matches_the_official_formula() -> None:
    for n, dim in [(7, 6), (5, 9)]:
        table = sinusoid_table(n, dim)
        assert table.shape == (1, n, dim) and table.dtype == torch.float32
        for pos in range(n):
            for i in range(dim):
                angle = pos / 10000 ** (2 * (i // 2) / dim)
                expected = math.sin(angle) if i % 2 == 0 else math.cos(angle)
                assert abs(table[0, pos, i].item() - expected) < 1e-6


def test_position_tables_are_not_in_the_state_dict_and_follow_the_grid() -> None:
    model = VideoMAEPretrain(**{**SMALL, "img_size": (16, 24), "num_frames": 6})
    assert model.grid_size == (3, 2, 3) and model.num_patches == 18
    assert model.encoder.pos_embed.shape == (1, 18, SMALL["embed_dim"])
    assert model.pos_embed.shape == (1, 18, SMALL["decoder_embed_dim"])
    assert not any("pos_embed" in key for key in model.state_dict())
    fresh = VideoMAEPretrain(**{**SMALL, "img_size": (16, 24), "num_frames": 6})
    fresh.load_state_dict(model.state_dict(), strict=True)


# ---------------------------------------------------------------------------- target
def _reference_target(
    model: VideoMAEPretrain, video: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The target written plainly: loops over clips, tokens and channels, float64."""
    t, p = model.tubelet_size, model.patch_size
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    pixels = video.double() * std.view(3, 1, 1, 1) + mean.view(3, 1, 1, 1)
    batch_size, chans, frames, height, width = video.shape
    clips = []
    for b in range(batch_size):
        tokens = []
        for ti in range(frames // t):
            for hi in range(height // p):
                for wi in range(width // p):
                    index = (ti * (height // p) + hi) * (width // p) + wi
                    if not mask[b, index]:
                        continue
                    cube = pixels[b, :, ti * t : (ti + 1) * t, hi * p : (hi + 1) * p]
                    cube = cube[..., wi * p : (wi + 1) * p]  # (c, p0, p1, p2)
                    columns = []
                    for c in range(chans):
                        values = cube[c].reshape(-1)  # (p0 p1 p2)
                        if model.normalize_target:
                            n = values.numel()
                            mu = values.sum() / n
                            sd = math.sqrt(((values - mu) ** 2).sum().item() / (n - 1))
                            values = (values - mu) / (sd + 1e-6)
                        columns.append(values)
                    tokens.append(torch.stack(columns, dim=1).reshape(-1))  # (p0 p1 p2 c)
        clips.append(torch.stack(tokens))
    return torch.stack(clips)


@pytest.mark.parametrize("normalize_target", [True, False])
def test_target_matches_a_plain_loop_reference(normalize_target: bool) -> None:
    model = VideoMAEPretrain(
        **{**SMALL, "img_size": (16, 24), "patch_size": 8, "num_frames": 6},
        normalize_target=normalize_target,
    )
    video = torch.randn(2, 3, 6, 16, 24, generator=_seeded(3))
    mask = _mask(model, 2, ratio=0.5, seed=4)
    target = model.target(video, mask)
    reference = _reference_target(model, video, mask)
    assert target.dtype == torch.float32
    assert target.shape == reference.shape == (2, 9, 2 * 8 * 8 * 3)
    assert (target.double() - reference).abs().max().item() < 1e-5
    # the target of chosen tokens (normalized after the gather) = every token's, gathered
    from videomae.models.masking import split_mask
    from videomae.models.vit import gather_tokens

    ids = split_mask(mask, model.num_patches)[1].flip(1)  # any order
    every = model.pixel_target(video)
    assert torch.allclose(model.pixel_target(video, ids), gather_tokens(every, ids), atol=1e-6)


def test_target_is_float32_and_loss_float32_under_autocast() -> None:
    model = VideoMAEPretrain(**SMALL)
    video = torch.randn(2, 3, 4, 32, 32, generator=_seeded(0))
    mask = _mask(model, 2)
    plain = model.target(video, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        target = model.target(video.bfloat16(), mask)
        loss, pred = model(video, mask)
    assert target.dtype == torch.float32
    assert loss.dtype == torch.float32
    assert pred.dtype == torch.bfloat16
    # Only the bf16 rounding of the input differs; the arithmetic is float32.
    assert torch.allclose(target, plain, atol=0.1)


# ---------------------------------------------------------------------------- shapes
def test_pred_shape_and_encoder_sees_only_visible_tokens() -> None:
    model = VideoMAEPretrain(**SMALL)
    mask = _mask(model, 3, ratio=0.75)
    num_masked = int(mask[0].sum())
    assert num_masked == 4 * 3 * 2  # int(0.75 * 16) per slice, 2 slices
    seen: dict[str, tuple[int, ...]] = {}
    model.encoder.blocks[0].register_forward_hook(
        lambda module, args, out: seen.__setitem__("encoder", tuple(args[0].shape))
    )
    model.decoder.blocks[0].register_forward_hook(
        lambda module, args, out: seen.__setitem__("decoder", tuple(args[0].shape))
    )
    video = torch.randn(3, 3, 4, 32, 32)
    loss, pred = model(video, mask)
    assert loss.ndim == 0
    assert pred.shape == (3, num_masked, 2 * 8 * 8 * 3)
    assert seen["encoder"] == (3, 32 - num_masked, SMALL["embed_dim"])
    assert seen["decoder"] == (3, 32, SMALL["decoder_embed_dim"])
    assert model.forward_encoder(video, mask).shape == (3, 32 - num_masked, SMALL["embed_dim"])


def test_encoder_gathers_visible_tokens_in_ascending_order() -> None:
    model = VideoMAEPretrain(**SMALL).eval()
    video = torch.randn(2, 3, 4, 32, 32)
    mask = _mask(model, 2)
    encoder = model.encoder
    tokens = encoder.embed(video)
    visible = tokens[~mask].reshape(2, -1, tokens.shape[-1])  # the official gather
    expected = encoder.forward_tokens(visible)
    assert torch.allclose(encoder(video, mask), expected, atol=1e-6)
    assert encoder(video).shape == (2, 32, SMALL["embed_dim"])


def test_properties_come_from_the_constructor() -> None:
    model = VideoMAEPretrain(**{**SMALL, "img_size": 48, "num_frames": 8, "tubelet_size": 4})
    assert (model.img_size, model.num_frames, model.tubelet_size, model.patch_size) == (48, 8, 4, 8)
    assert model.grid_size == (2, 6, 6) and model.num_patches == 72
    assert model.encoder.patch_embed.proj.kernel_size == (4, 8, 8)
    assert model.decoder.head.out_features == 4 * 8 * 8 * 3
    assert model.config["img_size"] == 48


def test_bad_inputs_raise() -> None:
    model = VideoMAEPretrain(**SMALL)
    mask = _mask(model, 2)
    uneven = mask.clone()
    uneven[0, torch.nonzero(~uneven[0])[0]] = True
    with pytest.raises(ValueError, match="same number"):
        model(torch.randn(2, 3, 4, 32, 32), uneven)
    with pytest.raises(ValueError, match="video"):
        model(torch.randn(2, 3, 4, 32, 48), mask)
    with pytest.raises(ValueError, match="num_frames"):
        VideoMAEPretrain(**{**SMALL, "num_frames": 5})
    with pytest.raises(ValueError, match="img_size"):
        VideoMAEPretrain(**{**SMALL, "img_size": 36})


# ---------------------------------------------------------------------------- names
def test_state_dict_uses_the_official_names() -> None:
    model = VideoMAEPretrain(**SMALL)
    keys = set(model.state_dict())
    expected = {
        "encoder.patch_embed.proj.weight",
        "encoder.patch_embed.proj.bias",
        "encoder.blocks.0.norm1.weight",
        "encoder.blocks.0.attn.qkv.weight",
        "encoder.blocks.0.attn.q_bias",
        "encoder.blocks.0.attn.v_bias",
        "encoder.blocks.0.attn.proj.weight",
        "encoder.blocks.0.norm2.bias",
        "encoder.blocks.0.mlp.fc1.weight",
        "encoder.blocks.1.mlp.fc2.bias",
        "encoder.norm.weight",
        "encoder_to_decoder.weight",
        "mask_token",
        "decoder.blocks.0.attn.qkv.weight",
        "decoder.blocks.0.attn.q_bias",
        "decoder.norm.weight",
        "decoder.head.weight",
        "decoder.head.bias",
    }
    assert expected <= keys, expected - keys
    assert not any("k_bias" in key or "qkv.bias" in key for key in keys)
    assert not any("pos_embed" in key for key in keys)
    assert "encoder_to_decoder.bias" not in keys
    assert model.mask_token.shape == (1, 1, SMALL["decoder_embed_dim"])
    assert model.mask_token.abs().max() <= 0.02


def test_layer_scale_and_no_weight_decay() -> None:
    model = VideoMAEPretrain(**SMALL, init_values=0.1)
    keys = set(model.state_dict())
    assert {"encoder.blocks.0.gamma_1", "encoder.blocks.0.gamma_2"} <= keys
    assert torch.all(model.encoder.blocks[0].gamma_1 == 0.1)
    skip = model.no_weight_decay()
    assert {"mask_token", "encoder.blocks.0.attn.q_bias", "encoder.norm.weight"} <= skip
    assert {"encoder.blocks.0.gamma_1", "decoder.head.bias"} <= skip
    assert "encoder.blocks.0.attn.qkv.weight" not in skip
    assert "decoder.head.weight" not in skip


def test_official_initialization() -> None:
    model = VideoMAEPretrain(**SMALL)
    block = model.encoder.blocks[0]
    assert torch.all(block.attn.q_bias == 0) and torch.all(block.attn.v_bias == 0)
    assert torch.all(block.mlp.fc1.bias == 0) and torch.all(block.norm1.weight == 1)
    # xavier-uniform bound for the fused qkv weight (3D x D)
    fan_in, fan_out = SMALL["embed_dim"], 3 * SMALL["embed_dim"]
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    weight = block.attn.qkv.weight
    assert weight.abs().max() <= bound
    # xavier-uniform, not PyTorch's default kaiming bound (1/sqrt(fan_in), smaller here): the
    # spread must reach the xavier bound and have the uniform distribution's std bound/sqrt(3)
    assert weight.abs().max() > 0.95 * bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3.0), rel=0.05)


# ---------------------------------------------------------------------------- attention
@pytest.mark.parametrize("head_dim", [None, 10])
def test_sdpa_attention_matches_plain_softmax(head_dim: int | None) -> None:
    torch.manual_seed(0)
    attn = Attention(24, num_heads=4, qkv_bias=True, head_dim=head_dim).eval()
    with torch.no_grad():
        attn.q_bias.normal_()
        attn.v_bias.normal_()
    x = torch.randn(3, 11, 24)
    heads, d = 4, attn.head_dim
    weight = attn.qkv.weight
    q = x @ weight[: heads * d].T + attn.q_bias
    k = x @ weight[heads * d : 2 * heads * d].T
    v = x @ weight[2 * heads * d :].T + attn.v_bias

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(3, 11, heads, d).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-2, -1) / math.sqrt(d)
    out = (scores.softmax(dim=-1) @ split(v)).transpose(1, 2).reshape(3, 11, heads * d)
    reference = attn.proj(out)
    assert (attn(x) - reference).abs().max().item() < 1e-5


def test_block_and_encoder_without_qkv_bias() -> None:
    encoder = VisionTransformerEncoder(
        img_size=16, patch_size=8, num_frames=2, embed_dim=24, depth=1, num_heads=2, qkv_bias=False
    )
    assert encoder.blocks[0].attn.q_bias is None
    assert "blocks.0.attn.q_bias" not in encoder.state_dict()
    assert encoder(torch.randn(1, 3, 2, 16, 16)).shape == (1, 4, 24)


# ---------------------------------------------------------------------------- training
@pytest.fixture
def one_thread():
    """Run on one intra-op thread: these ops are too small to gain from more, and with other
    processes on the CPU, spinning OpenMP workers make a multi-threaded step 10-100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_model(**overrides) -> VideoMAEPretrain:
    return create_pretrain("tiny", img_size=32, num_frames=4, tubelet_size=2, **overrides)


def test_loss_falls_when_overfitting_one_batch(one_thread: None) -> None:
    torch.manual_seed(0)
    model = _tiny_model()
    video = torch.randn(2, 3, 4, 32, 32, generator=_seeded(1))
    mask = _mask(model, 2, ratio=0.75)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(50):
        loss, _ = model(video, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_grad_checkpointing_gives_the_same_loss_and_grads(one_thread: None) -> None:
    torch.manual_seed(0)
    plain = _tiny_model(drop_path_rate=0.1)
    checkpointed = _tiny_model(drop_path_rate=0.1, grad_checkpointing=True)
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.grad_checkpointing and checkpointed.decoder.grad_checkpointing
    video = torch.randn(2, 3, 4, 32, 32, generator=_seeded(2))
    mask = _mask(model=plain, batch_size=2)
    results = []
    for model in (plain, checkpointed):
        model.train()
        torch.manual_seed(5)  # the same drop-path draws in both runs
        loss, _ = model(video, mask)
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    for name, grad in grads_a.items():
        assert grad is not None, name
        assert torch.allclose(grad, grads_b[name], atol=1e-6), name


# ---------------------------------------------------------------------------- registry
def test_registry_sizes() -> None:
    assert set(SIZES) == {"tiny", "vit_s", "vit_b", "vit_l", "vit_h", "vit_g"}
    assert get_size("vit_b") == BackboneSize(768, 12, 12, 4.0, 16, 384, 4, 6)
    assert get_size("vit_l").decoder_depth == 12
    assert get_size("vit_g").patch_size == 14
    with pytest.raises(KeyError, match="vit_b"):
        get_size("vit_xxl")
    giant_block = Block(1408, 16, mlp_ratio=get_size("vit_g").mlp_ratio)
    assert giant_block.mlp.fc1.out_features == 6144
    model = create_pretrain("tiny", img_size=32, num_frames=4, depth=1)
    assert len(model.encoder.blocks) == 1 and model.encoder.embed_dim == 192
    assert len(model.decoder.blocks) == 2


# ---------------------------------------------------------------------------- HF transformers
def test_matches_hf_transformers_videomae_for_pretraining() -> None:
    transformers = pytest.importorskip("transformers")
    sizes = {"embed_dim": 64, "depth": 2, "num_heads": 4}
    decoder = {"decoder_embed_dim": 32, "decoder_depth": 2, "decoder_num_heads": 2}
    config = transformers.VideoMAEConfig(
        image_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        hidden_size=sizes["embed_dim"],
        num_hidden_layers=sizes["depth"],
        num_attention_heads=sizes["num_heads"],
        intermediate_size=4 * sizes["embed_dim"],
        decoder_hidden_size=decoder["decoder_embed_dim"],
        decoder_num_hidden_layers=decoder["decoder_depth"],
        decoder_num_attention_heads=decoder["decoder_num_heads"],
        decoder_intermediate_size=4 * decoder["decoder_embed_dim"],
        qkv_bias=True,
        qv_bias=True,
        use_mean_pooling=False,
        norm_pix_loss=True,
        layer_norm_eps=1e-6,
    )
    torch.manual_seed(0)
    hf = transformers.VideoMAEForPreTraining(config).eval()
    with torch.no_grad():  # HF inits biases to zero: randomize everything so the map is tested
        for param in hf.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    ours = VideoMAEPretrain(
        img_size=32, patch_size=8, num_frames=4, tubelet_size=2, **sizes, **decoder
    ).eval()
    ours.load_state_dict(hf_to_official(hf.state_dict()), strict=True)
    # HF's decoder norm is nn.LayerNorm(decoder_hidden_size) with the default eps 1e-5 (the
    # official decoder uses 1e-6 like every other norm); match it for the comparison.
    ours.decoder.norm.eps = hf.decoder.norm.eps

    video = torch.randn(2, 3, 4, 32, 32, generator=_seeded(7))
    mask = _mask(ours, 2, ratio=0.75, seed=8)
    with torch.no_grad():
        hf_out = hf(pixel_values=video.transpose(1, 2), bool_masked_pos=mask)
        loss, pred = ours(video, mask)
    assert pred.shape == hf_out.logits.shape
    assert (pred - hf_out.logits).abs().max().item() <= 1e-5
    assert abs(loss.item() - hf_out.loss.item()) <= 1e-5


@pytest.mark.parametrize(
    ("img_size", "patch", "frames", "tubelet"), [(32, 8, 4, 2), ((16, 24), 8, 6, 3), (16, 16, 2, 1)]
)
def test_patch_embed_matrix_product_equals_conv3d(img_size, patch, frames, tubelet) -> None:
    """The tubelet embedding is a matrix product over flattened tubelets: Conv3d's numbers (fp32,
    1e-6), forward and weight gradients, with the same parameter names and shapes."""

    torch.manual_seed(0)
    embed = PatchEmbed(img_size, patch, frames, tubelet, in_chans=3, embed_dim=24)
    assert embed.proj.weight.shape == (24, 3, tubelet, patch, patch)
    assert sorted(name for name, _ in embed.named_parameters()) == ["proj.bias", "proj.weight"]
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    video = torch.randn(2, 3, frames, h, w)
    out = embed(video)
    ref = F.conv3d(video, embed.proj.weight, embed.proj.bias, stride=embed.proj.stride)
    ref = ref.flatten(2).transpose(1, 2)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    grad = torch.randn_like(out)
    (w1, b1) = torch.autograd.grad(out, (embed.proj.weight, embed.proj.bias), grad)
    (w2, b2) = torch.autograd.grad(ref, (embed.proj.weight, embed.proj.bias), grad)
    torch.testing.assert_close(w1, w2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b1, b2, atol=1e-5, rtol=1e-5)
