"""The fine-tuning classifier: names, init, pooling, dropout, HF equivalence; attention backends,
torch.compile and activation checkpointing of both models."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import torch

from hf_utils import hf_to_official, randomize_
from videomae.models.classifier import VideoMAEClassifier
from videomae.models.masking import TubeMasking
from videomae.models.pretrain import VideoMAEPretrain
from videomae.models.registry import create_classifier, create_pretrain, get_size
from videomae.models.vit import ATTENTION_BACKENDS, Attention, run_blocks, sinusoid_table

SMALL = {
    "img_size": 32,
    "patch_size": 8,
    "num_frames": 4,
    "tubelet_size": 2,
    "embed_dim": 48,
    "depth": 2,
    "num_heads": 3,
}
"""A few-thousand-parameter encoder: grid (2, 4, 4), 32 tokens."""

CLIP = {"img_size": 32, "num_frames": 4, "tubelet_size": 2}
"""The clip of the named-size (``tiny``, ``vit_s``) models: patch 16 -> grid (2, 2, 2)."""


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one intra-op thread: these ops are too small to gain from more, and with other
    processes on the CPU, spinning OpenMP workers make a multi-threaded step 10-100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _seeded(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _video(batch_size: int = 2, seed: int = 0, frames: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randn(batch_size, 3, frames, size, size, generator=_seeded(seed))


# ---------------------------------------------------------------------------- shapes and names
def test_logits_and_features_shapes() -> None:
    model = VideoMAEClassifier(num_classes=7, **SMALL)
    video = _video(3)
    assert model(video).shape == (3, 7)
    assert model.forward_features(video).shape == (3, SMALL["embed_dim"])
    assert model.grid_size == (2, 4, 4) and model.num_patches == 32
    assert (model.img_size, model.num_frames, model.tubelet_size, model.patch_size) == (
        32,
        4,
        2,
        8,
    )
    features_only = VideoMAEClassifier(num_classes=0, **SMALL).eval()
    assert features_only(video).shape == (3, SMALL["embed_dim"])
    with pytest.raises(ValueError, match="video"):
        model(_video(size=48))
    with pytest.raises(ValueError, match="num_classes"):
        VideoMAEClassifier(num_classes=-1, **SMALL)


def test_state_dict_has_exactly_the_official_fine_tuning_names() -> None:
    model = VideoMAEClassifier(num_classes=5, **{**SMALL, "depth": 1})
    block = [
        "norm1.weight",
        "norm1.bias",
        "attn.q_bias",
        "attn.v_bias",
        "attn.qkv.weight",
        "attn.proj.weight",
        "attn.proj.bias",
        "norm2.weight",
        "norm2.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
    ]
    expected = {
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        *(f"blocks.0.{name}" for name in block),
        "fc_norm.weight",
        "fc_norm.bias",
        "head.weight",
        "head.bias",
    }
    keys = set(model.state_dict())
    assert keys == expected
    assert not any(key.startswith("encoder.") for key in keys)


def test_without_mean_pooling_norm_and_first_token() -> None:
    model = VideoMAEClassifier(num_classes=5, use_mean_pooling=False, **SMALL).eval()
    keys = set(model.state_dict())
    assert {"norm.weight", "norm.bias"} <= keys
    assert not any(key.startswith("fc_norm") for key in keys)
    video = _video()
    with torch.no_grad():
        tokens = model.forward_tokens(model.embed(video))
        assert torch.equal(model.forward_features(video), tokens[:, 0])
        assert torch.allclose(model(video), model.head(tokens[:, 0]), atol=1e-7)


def test_mean_pooling_features_are_fc_norm_of_the_token_mean() -> None:
    model = VideoMAEClassifier(num_classes=5, **SMALL).eval()
    assert isinstance(model.norm, torch.nn.Identity)
    video = _video()
    with torch.no_grad():
        tokens = model.forward_tokens(model.embed(video))
        assert torch.equal(model.forward_features(video), model.fc_norm(tokens.mean(dim=1)))


def test_config_and_registry() -> None:
    model = create_classifier("tiny", 11, **CLIP, drop_path_rate=0.2)
    size = get_size("tiny")
    assert model.config["num_classes"] == 11
    assert model.config["embed_dim"] == size.embed_dim and len(model.blocks) == size.depth
    assert model.config["drop_path_rate"] == 0.2 and model.config["attention"] == "auto"
    assert not any(key.startswith("decoder") for key in model.config)
    rebuilt = VideoMAEClassifier(**model.config)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert create_classifier("vit_s", 3, **CLIP, depth=1).head.in_features == 384


# ---------------------------------------------------------------------------- initialization
def test_head_is_initialized_small() -> None:
    torch.manual_seed(0)
    model = VideoMAEClassifier(num_classes=200, **{**SMALL, "embed_dim": 96, "num_heads": 4})
    std = model.head.weight.std().item()
    assert 0.9 * 0.02 * 0.001 < std < 1.1 * 0.02 * 0.001
    assert torch.all(model.head.bias == 0)
    unscaled = VideoMAEClassifier(
        num_classes=200, init_scale=1.0, **{**SMALL, "embed_dim": 96, "num_heads": 4}
    )
    assert 0.9 * 0.02 < unscaled.head.weight.std().item() < 1.1 * 0.02
    # every Linear of the fine-tuning model is N(0, 0.02) with zero bias (official _init_weights)
    fc1 = model.blocks[0].mlp.fc1
    assert 0.9 * 0.02 < fc1.weight.std().item() < 1.1 * 0.02
    assert torch.all(fc1.bias == 0) and torch.all(model.blocks[0].attn.q_bias == 0)
    assert torch.all(model.fc_norm.weight == 1) and torch.all(model.fc_norm.bias == 0)


def test_drop_path_rises_linearly_over_the_blocks() -> None:
    model = VideoMAEClassifier(num_classes=2, drop_path_rate=0.3, **{**SMALL, "depth": 4})
    rates = [getattr(block.drop_path, "drop_prob", 0.0) for block in model.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert isinstance(model.blocks[0].drop_path, torch.nn.Identity)


def test_dropout_only_in_train_mode() -> None:
    model = VideoMAEClassifier(num_classes=50, fc_drop_rate=0.5, head_drop_rate=0.5, **SMALL)
    with torch.no_grad():
        model.head.weight.normal_()  # visible logits
    video = _video()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(video), model(video))
        model.train()
        # the trunk has no dropout here: the features are deterministic, the logits are not
        assert torch.equal(model.forward_features(video), model.forward_features(video))
        assert not torch.allclose(model(video), model(video))
    plain = VideoMAEClassifier(num_classes=50, **SMALL).train()
    assert isinstance(plain.fc_dropout, torch.nn.Identity)
    assert isinstance(plain.head_dropout, torch.nn.Identity)
    with torch.no_grad():
        assert torch.equal(plain(video), plain(video))


def test_position_embedding_fixed_or_learnable() -> None:
    fixed = VideoMAEClassifier(num_classes=2, **SMALL)
    assert "pos_embed" not in fixed.state_dict()
    assert not isinstance(fixed.pos_embed, torch.nn.Parameter)
    assert torch.equal(fixed.pos_embed, sinusoid_table(32, SMALL["embed_dim"]))
    assert "pos_embed" not in fixed.no_weight_decay()

    torch.manual_seed(0)
    learned = VideoMAEClassifier(num_classes=2, learnable_pos_embed=True, **SMALL)
    assert learned.config["learnable_pos_embed"] is True
    assert "pos_embed" in dict(learned.named_parameters())
    assert learned.state_dict()["pos_embed"].shape == (1, 32, SMALL["embed_dim"])
    assert 0.015 < learned.pos_embed.std().item() < 0.025
    assert "pos_embed" in learned.no_weight_decay()
    learned(_video()).sum().backward()
    assert learned.pos_embed.grad is not None and learned.pos_embed.grad.abs().sum() > 0


def test_no_weight_decay() -> None:
    model = VideoMAEClassifier(num_classes=2, init_values=0.1, **SMALL)
    skip = model.no_weight_decay()
    assert {"blocks.0.attn.q_bias", "blocks.0.gamma_1", "fc_norm.weight", "head.bias"} <= skip
    assert "head.weight" not in skip and "blocks.0.attn.qkv.weight" not in skip
    assert "patch_embed.proj.weight" not in skip


# ---------------------------------------------------------------------------- same encoder
def test_encoder_equals_the_pretraining_encoder_with_copied_weights() -> None:
    pretrain = VideoMAEPretrain(
        **SMALL, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2
    ).eval()
    encoder_state = {
        key.removeprefix("encoder."): value
        for key, value in pretrain.state_dict().items()
        if key.startswith("encoder.")
    }
    video = _video(seed=3)
    with torch.no_grad():
        # without mean pooling the classifier keeps the final norm: the whole encoder matches
        with_norm = VideoMAEClassifier(num_classes=4, use_mean_pooling=False, **SMALL).eval()
        missing, unexpected = with_norm.load_state_dict(encoder_state, strict=False)
        assert set(missing) == {"head.weight", "head.bias"} and not unexpected
        expected = pretrain.encoder(video)  # (B, N, D), no mask
        tokens = with_norm.forward_tokens(with_norm.embed(video))
        assert torch.equal(tokens, expected)
        # with mean pooling (no final norm) the blocks' output matches
        pooled = VideoMAEClassifier(num_classes=4, **SMALL).eval()
        missing, unexpected = pooled.load_state_dict(encoder_state, strict=False)
        assert set(missing) == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
        assert set(unexpected) == {"norm.weight", "norm.bias"}
        blocks_out = run_blocks(
            pretrain.encoder.blocks, pretrain.encoder.embed(video), False, False
        )
        assert torch.equal(pooled.forward_tokens(pooled.embed(video)), blocks_out)


# ---------------------------------------------------------------------------- HF transformers
@pytest.mark.parametrize("tubelet_size", [2, 1])
@pytest.mark.parametrize("size", ["tiny", "vit_s"])
def test_matches_hf_transformers_videomae_for_video_classification(
    size: str, tubelet_size: int
) -> None:
    transformers = pytest.importorskip("transformers")
    sizes = get_size(size)
    depth = min(sizes.depth, 2)
    num_classes = 10
    config = transformers.VideoMAEConfig(
        image_size=32,
        patch_size=sizes.patch_size,
        num_frames=4,
        tubelet_size=tubelet_size,
        hidden_size=sizes.embed_dim,
        num_hidden_layers=depth,
        num_attention_heads=sizes.num_heads,
        intermediate_size=int(sizes.embed_dim * sizes.mlp_ratio),
        qkv_bias=True,
        qv_bias=True,
        use_mean_pooling=True,
        layer_norm_eps=1e-6,
        num_labels=num_classes,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    hf = transformers.VideoMAEForVideoClassification(config).eval()
    assert hf.config._attn_implementation == "sdpa"
    randomize_(hf)
    ours = create_classifier(
        size, num_classes, img_size=32, num_frames=4, tubelet_size=tubelet_size, depth=depth
    ).eval()
    ours.load_state_dict(hf_to_official(hf.state_dict(), encoder_prefix=""), strict=True)
    # HF's fc_norm is nn.LayerNorm(hidden_size) with the default eps 1e-5 (the official fc_norm
    # uses 1e-6 like every other norm); match it for the comparison.
    ours.fc_norm.eps = hf.fc_norm.eps

    video = _video(2, seed=7)
    with torch.no_grad():
        expected = hf(pixel_values=video.transpose(1, 2)).logits
        logits = ours(video)
    assert logits.shape == expected.shape == (2, num_classes)
    assert expected.abs().max() > 0.1  # a meaningful comparison
    assert (logits - expected).abs().max().item() <= 1e-5


# ---------------------------------------------------------------------------- attention option
@pytest.mark.parametrize("attention", ["math", "flash"])
def test_pinned_cpu_backends_equal_auto(attention: str) -> None:
    torch.manual_seed(0)
    auto = VideoMAEClassifier(num_classes=5, **SMALL).eval()
    pinned = VideoMAEClassifier(num_classes=5, attention=attention, **SMALL).eval()
    pinned.load_state_dict(auto.state_dict())
    assert pinned.config["attention"] == attention
    assert all(block.attn.attention == attention for block in pinned.blocks)
    video = _video()
    with torch.no_grad():
        assert (pinned.forward_features(video) - auto.forward_features(video)).abs().max() < 1e-5


def test_pretrain_threads_the_attention_option() -> None:
    model = create_pretrain("tiny", **CLIP, depth=1, attention="math")
    assert model.config["attention"] == "math"
    assert model.encoder.blocks[0].attn.attention == "math"
    assert model.decoder.blocks[0].attn.attention == "math"
    assert create_pretrain("tiny", **CLIP, depth=1).config["attention"] == "auto"


def test_bad_attention_value_raises_naming_the_option() -> None:
    choices = ", ".join(ATTENTION_BACKENDS)
    for build in (
        lambda: VideoMAEClassifier(num_classes=2, attention="fast", **SMALL),
        lambda: create_pretrain("tiny", **CLIP, attention="fast"),
        lambda: Attention(24, num_heads=4, attention="fast"),
    ):
        with pytest.raises(ValueError, match="attention") as info:
            build()
        assert choices in str(info.value) and "'fast'" in str(info.value)


@pytest.mark.parametrize("attention", ["efficient", "cudnn"])
def test_cuda_only_backend_on_cpu_raises_a_clear_error(attention: str) -> None:
    model = VideoMAEClassifier(num_classes=2, attention=attention, **SMALL).eval()
    with torch.no_grad(), pytest.raises(RuntimeError, match=f"attention='{attention}'") as info:
        model(_video())
    message = str(info.value)
    assert "'auto'" in message and "'math'" in message and "cpu" in message


# ---------------------------------------------------------------------- compile, checkpointing
def _tiny_pretrain(**overrides) -> VideoMAEPretrain:
    return create_pretrain("tiny", **CLIP, **overrides)


def _tube_mask(model: VideoMAEPretrain, batch_size: int = 2) -> torch.Tensor:
    return TubeMasking(0.75)(batch_size, model.grid_size, device="cpu", generator=_seeded(0))


def _compile_or_skip(model: torch.nn.Module, *args: torch.Tensor):
    """``model`` compiled in place (as the LightningModule's ``compile`` flag does) and its output
    on ``args``; skip where inductor cannot run (no C++ compiler, Python without dynamo)."""
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip("torch.compile is not supported on this Python")
    if not (os.environ.get("CXX") or any(map(shutil.which, ("c++", "g++", "clang++")))):
        pytest.skip("torch.compile (inductor) on CPU needs a C++ compiler; none found")
    torch._dynamo.reset()
    model.compile()
    return model(*args)


def test_torch_compile_gives_the_same_loss() -> None:
    """The default inductor backend, forward only (cold compile ~45 s on 2 busy CPU cores)."""
    torch.manual_seed(0)
    eager = _tiny_pretrain().eval()
    compiled = _tiny_pretrain().eval()
    compiled.load_state_dict(eager.state_dict())
    video, mask = _video(seed=2), _tube_mask(eager)
    with torch.no_grad():
        loss, pred = eager(video, mask)
        start = time.perf_counter()
        loss_c, pred_c = _compile_or_skip(compiled, video, mask)
    elapsed = time.perf_counter() - start
    assert abs(loss.item() - loss_c.item()) <= 1e-5, elapsed
    assert (pred - pred_c).abs().max().item() <= 1e-4
    torch._dynamo.reset()


@pytest.mark.slow
def test_torch_compile_training_step_gives_the_same_loss_and_grads() -> None:
    """Compiled forward + backward of both models in train mode (minutes of inductor work)."""
    torch.manual_seed(0)
    video = _video(seed=2)
    pairs = [
        (_tiny_pretrain(drop_path_rate=0.1), _tiny_pretrain(drop_path_rate=0.1)),
        (
            create_classifier("tiny", 5, **CLIP, drop_path_rate=0.1),
            create_classifier("tiny", 5, **CLIP, drop_path_rate=0.1),
        ),
    ]
    for eager, compiled in pairs:
        compiled.load_state_dict(eager.state_dict())
        args = (video, _tube_mask(eager)) if isinstance(eager, VideoMAEPretrain) else (video,)
        results = []
        for model in (eager, compiled):
            model.train()
            torch.manual_seed(5)  # the same drop-path draws in both runs
            out = _compile_or_skip(model, *args) if model is compiled else model(*args)
            loss = out[0] if isinstance(out, tuple) else out.square().mean() * 1e6
            loss.backward()
            results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
        (loss_a, grads_a), (loss_b, grads_b) = results
        assert abs(loss_a.item() - loss_b.item()) <= 1e-5 * max(1.0, abs(loss_a.item()))
        for name, grad in grads_a.items():
            assert torch.allclose(grad, grads_b[name], rtol=1e-4, atol=1e-5), name
    torch._dynamo.reset()


def test_classifier_grad_checkpointing_gives_the_same_loss_and_grads() -> None:
    torch.manual_seed(0)
    plain = create_classifier("tiny", 5, **CLIP, drop_path_rate=0.1, init_scale=1.0)
    checkpointed = create_classifier(
        "tiny", 5, **CLIP, drop_path_rate=0.1, init_scale=1.0, grad_checkpointing=True
    )
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.grad_checkpointing and checkpointed.config["grad_checkpointing"]
    video = _video(seed=4)
    labels = torch.tensor([1, 3])
    results = []
    for model in (plain, checkpointed):
        model.train()
        torch.manual_seed(5)  # the same drop-path draws in both runs
        loss = torch.nn.functional.cross_entropy(model(video), labels)
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    for name, grad in grads_a.items():
        assert grad is not None, name
        assert torch.allclose(grad, grads_b[name], atol=1e-6), name
