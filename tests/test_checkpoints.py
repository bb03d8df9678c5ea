"""Checkpoint formats: portable, HF transformers, official ``.pth``, Lightning ``.ckpt``; safety."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hf_utils import randomize_
from videomae import checkpoints
from videomae.cli.convert import main as convert_main
from videomae.models import VideoMAEClassifier, VideoMAEPretrain, load
from videomae.models.masking import TubeMasking
from videomae.models.registry import create_classifier, create_pretrain

SIZES = ["tiny", "vit_s"]
TUBELETS = [2, 1]
GEOMETRY = {"img_size": 32, "num_frames": 4}


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _video(batch_size: int = 2, frames: int = 4, seed: int = 7) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, 3, frames, 32, 32, generator=generator)


def _pretrain(size: str = "tiny", tubelet_size: int = 2, **overrides) -> VideoMAEPretrain:
    torch.manual_seed(0)
    kwargs = {**GEOMETRY, "tubelet_size": tubelet_size, "depth": 2, "decoder_depth": 1}
    model = create_pretrain(size, **{**kwargs, **overrides}).eval()
    randomize_(model)
    return model


def _classifier(size: str = "tiny", tubelet_size: int = 2, **overrides) -> VideoMAEClassifier:
    torch.manual_seed(0)
    kwargs = {**GEOMETRY, "tubelet_size": tubelet_size, "depth": 2}
    model = create_classifier(size, 5, **{**kwargs, **overrides}).eval()
    randomize_(model)
    return model


def _mask(model: VideoMAEPretrain, seed: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return TubeMasking(0.75)(2, model.grid_size, device="cpu", generator=generator)


def _same_pretrain(a: VideoMAEPretrain, b: VideoMAEPretrain, atol: float = 0.0) -> None:
    video, mask = _video(frames=a.num_frames), _mask(a)
    with torch.no_grad():
        loss_a, pred_a = a(video, mask)
        loss_b, pred_b = b(video, mask)
    assert (pred_a - pred_b).abs().max().item() <= atol
    assert abs(loss_a.item() - loss_b.item()) <= atol


def _same_logits(a: VideoMAEClassifier, b: VideoMAEClassifier, atol: float = 0.0) -> None:
    video = _video(frames=a.num_frames)
    with torch.no_grad():
        assert (a(video) - b(video)).abs().max().item() <= atol


# ---------------------------------------------------------------------------- portable
@pytest.mark.parametrize("tubelet_size", TUBELETS)
@pytest.mark.parametrize("size", SIZES)
def test_portable_round_trip(tmp_path: Path, size: str, tubelet_size: int) -> None:
    pretrain = _pretrain(size, tubelet_size)
    path = checkpoints.save_portable(pretrain, tmp_path / "p.safetensors")
    assert path.with_suffix(".json").is_file()
    loaded = load(path)
    assert isinstance(loaded, VideoMAEPretrain) and loaded.config == pretrain.config
    _same_pretrain(pretrain, loaded.eval())

    classifier = _classifier(size, tubelet_size)
    loaded = checkpoints.load(checkpoints.save_portable(classifier, tmp_path / "c.safetensors"))
    assert isinstance(loaded, VideoMAEClassifier) and loaded.config == classifier.config
    _same_logits(classifier, loaded.eval())


# ---------------------------------------------------------------------------- HF transformers
@pytest.mark.parametrize("tubelet_size", TUBELETS)
@pytest.mark.parametrize("size", SIZES)
def test_hf_round_trips_pretrain(tmp_path: Path, size: str, tubelet_size: int) -> None:
    transformers = pytest.importorskip("transformers")
    ours = _pretrain(size, tubelet_size, decoder_norm_eps=checkpoints.HF_NORM_EPS)
    checkpoints.save_hf(ours, tmp_path / "hf")
    hf = transformers.VideoMAEForPreTraining.from_pretrained(tmp_path / "hf").eval()
    video, mask = _video(), _mask(ours)
    with torch.no_grad():
        expected = hf(pixel_values=video.transpose(1, 2), bool_masked_pos=mask)
        loss, pred = ours(video, mask)
    assert (pred - expected.logits).abs().max().item() <= 1e-5
    assert abs(loss.item() - expected.loss.item()) <= 1e-5

    hf.save_pretrained(tmp_path / "saved")
    back = load(tmp_path / "saved").eval()
    assert isinstance(back, VideoMAEPretrain)
    _same_pretrain(ours, back, atol=1e-5)


@pytest.mark.parametrize("tubelet_size", TUBELETS)
@pytest.mark.parametrize("size", SIZES)
def test_hf_round_trips_classifier(tmp_path: Path, size: str, tubelet_size: int) -> None:
    transformers = pytest.importorskip("transformers")
    ours = _classifier(size, tubelet_size, fc_norm_eps=checkpoints.HF_NORM_EPS)
    checkpoints.save_hf(ours, tmp_path / "hf")
    hf = transformers.VideoMAEForVideoClassification.from_pretrained(tmp_path / "hf").eval()
    video = _video()
    with torch.no_grad():
        expected = hf(pixel_values=video.transpose(1, 2)).logits
        logits = ours(video)
    assert expected.abs().max() > 0.01
    assert (logits - expected).abs().max().item() <= 1e-5

    hf.save_pretrained(tmp_path / "saved")
    back = load(tmp_path / "saved").eval()
    assert isinstance(back, VideoMAEClassifier) and back.num_classes == 5
    _same_logits(ours, back, atol=1e-5)


def test_hf_directory_keeps_hf_eps(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.VideoMAEConfig(
        image_size=32,
        patch_size=16,
        num_frames=4,
        hidden_size=192,
        num_hidden_layers=1,
        num_attention_heads=3,
        intermediate_size=768,
        use_mean_pooling=True,
        num_labels=3,
    )
    torch.manual_seed(0)
    hf = transformers.VideoMAEForVideoClassification(config).eval()
    randomize_(hf)
    hf.save_pretrained(tmp_path / "hf")
    ours = load(tmp_path / "hf").eval()
    assert ours.config["norm_eps"] == config.layer_norm_eps and ours.fc_norm.eps == 1e-5
    video = _video()
    with torch.no_grad():
        assert (ours(video) - hf(pixel_values=video.transpose(1, 2)).logits).abs().max() <= 1e-5


# ---------------------------------------------------------------------------- official .pth
def test_official_pretrain_pth_under_model(tmp_path: Path) -> None:
    ours = _pretrain()
    torch.save({"model": ours.state_dict(), "epoch": 3}, tmp_path / "pre.pth")
    loaded = load(tmp_path / "pre.pth", **GEOMETRY).eval()
    assert isinstance(loaded, VideoMAEPretrain)
    for key in ("embed_dim", "depth", "num_heads", "decoder_embed_dim", "decoder_depth"):
        assert loaded.config[key] == ours.config[key]
    _same_pretrain(ours, loaded)


def test_official_classifier_pth_under_module_with_encoder_prefix(tmp_path: Path) -> None:
    ours = _classifier("vit_s", tubelet_size=1)
    state = {"encoder." + k: v for k, v in ours.state_dict().items()}
    torch.save({"module": state}, tmp_path / "ft.pth")
    loaded = load(tmp_path / "ft.pth", **GEOMETRY).eval()
    assert isinstance(loaded, VideoMAEClassifier)
    assert (loaded.num_classes, loaded.tubelet_size, loaded.config["num_heads"]) == (5, 1, 6)
    _same_logits(ours, loaded)


def test_pretrain_pth_as_classifier_gives_the_encoder(tmp_path: Path) -> None:
    ours = _pretrain()
    torch.save({"model": ours.state_dict()}, tmp_path / "pre.pth")
    classifier = load(tmp_path / "pre.pth", kind="classifier", num_classes=7, **GEOMETRY)
    assert isinstance(classifier, VideoMAEClassifier) and classifier.num_classes == 7
    assert torch.equal(classifier.blocks[1].mlp.fc1.weight, ours.encoder.blocks[1].mlp.fc1.weight)


# ---------------------------------------------------------------------------- Lightning .ckpt
def test_lightning_ckpt(tmp_path: Path) -> None:
    ours = _pretrain(tubelet_size=1)
    checkpoint = {
        "state_dict": {"net." + k: v for k, v in ours.state_dict().items()},
        "videomae": {"kind": "pretrain", "config": dict(ours.config)},
        "epoch": 1,
    }
    torch.save(checkpoint, tmp_path / "last.ckpt")
    loaded = load(tmp_path / "last.ckpt").eval()
    assert loaded.config == ours.config
    _same_pretrain(ours, loaded)
    classifier = load(tmp_path / "last.ckpt", kind="classifier", num_classes=3)
    assert classifier.num_classes == 3 and classifier.tubelet_size == 1
    assert classifier.num_frames == ours.num_frames
    assert torch.equal(classifier.blocks[0].attn.qkv.weight, ours.encoder.blocks[0].attn.qkv.weight)


# ---------------------------------------------------------------------------- safety and errors
class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"model": {"x": torch.zeros(1)}, "evil": _Evil(str(marker))}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"refused.*bad\.pth.*run code"):
        load(tmp_path / "bad.pth")
    assert not marker.exists()


def test_shape_mismatch_names_the_key(tmp_path: Path) -> None:
    ours = _classifier()
    state = ours.state_dict()
    state["blocks.1.mlp.fc2.bias"] = torch.zeros(7)
    torch.save({"model": state}, tmp_path / "ft.pth")
    with pytest.raises(ValueError, match=r"blocks\.1\.mlp\.fc2\.bias.*\(7,\).*\(192,\)"):
        load(tmp_path / "ft.pth", **GEOMETRY)
    torch.save({"model": ours.state_dict()}, tmp_path / "ok.pth")
    with pytest.raises(ValueError, match=r"patch_embed\.proj\.weight"):
        load(tmp_path / "ok.pth", embed_dim=384, num_heads=6, **GEOMETRY)


def test_missing_and_unexpected_keys_are_reported(tmp_path: Path) -> None:
    ours = _classifier()
    path = checkpoints.save_portable(ours, tmp_path / "c.safetensors")
    headless = load(path, num_classes=0)  # a feature extractor: the head is dropped
    assert isinstance(headless.head, torch.nn.Identity)
    extra = {**ours.state_dict(), "blocks.0.attn.k_bias": torch.zeros(192)}
    torch.save({"model": extra}, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"unexpected keys: \['blocks\.0\.attn\.k_bias'\]"):
        load(tmp_path / "extra.pth", **GEOMETRY)
    state = ours.state_dict()
    del state["blocks.0.norm1.bias"]
    torch.save({"model": state}, tmp_path / "ft.pth")
    with pytest.raises(ValueError, match=r"missing keys: \['blocks\.0\.norm1\.bias'\]"):
        load(tmp_path / "ft.pth", **GEOMETRY)


# ---------------------------------------------------------------------------- positions
def test_sinusoidal_positions_follow_the_requested_grid(tmp_path: Path) -> None:
    ours = _pretrain(num_frames=16)
    torch.save({"model": ours.state_dict()}, tmp_path / "pre.pth")
    loaded = load(tmp_path / "pre.pth", num_frames=8, img_size=32)
    assert loaded.grid_size == (4, 2, 2) and loaded.pos_embed.shape == (1, 16, 96)
    assert loaded.encoder.pos_embed.shape == (1, 16, 192)
    _same_pretrain(loaded.eval(), loaded)  # runs on 8 frames


def test_learned_positions_are_interpolated(tmp_path: Path) -> None:
    ours = _classifier(num_frames=16, learnable_pos_embed=True)
    torch.save({"model": ours.state_dict()}, tmp_path / "ft.pth")
    loaded = load(tmp_path / "ft.pth", num_frames=8, img_size=32)
    assert loaded.config["learnable_pos_embed"] and loaded.pos_embed.shape == (1, 16, 192)
    source = ours.pos_embed.detach().reshape(8, 2, 2, 192)
    # halving T' with trilinear (align_corners=False) averages neighbouring time steps
    expected = (source[0::2] + source[1::2]) / 2
    assert torch.allclose(loaded.pos_embed.detach().reshape(4, 2, 2, 192), expected, atol=1e-6)


# ---------------------------------------------------------------------------- CLI
def test_cli_converts(tmp_path: Path) -> None:
    ours = _classifier()
    torch.save({"model": ours.state_dict()}, tmp_path / "ft.pth")
    args = [str(tmp_path / "ft.pth"), "--num-frames", "4", "--img-size", "32"]
    assert convert_main([*args[:1], str(tmp_path / "out.safetensors"), *args[1:]]) == 0
    _same_logits(ours, load(tmp_path / "out.safetensors").eval())
    assert convert_main([*args, "--to", "hf", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "config.json").is_file()
    _same_logits(ours, load(tmp_path / "hf", fc_norm_eps=1e-6).eval(), atol=1e-6)
    assert convert_main([str(tmp_path / "missing.pth"), str(tmp_path / "x.safetensors")]) == 2
    assert convert_main([str(tmp_path / "ft.pth")]) == 2


# ---------------------------------------------------------------------------- review fixes
def test_official_training_checkpoint_with_args_namespace_loads(tmp_path: Path) -> None:
    """Official `utils.save_model` stores `args` (an argparse.Namespace) beside the weights."""
    import argparse

    ours = _pretrain()
    args = argparse.Namespace(model="pretrain_videomae_small_patch16_224", mask_ratio=0.9)
    torch.save({"model": ours.state_dict(), "args": args, "epoch": 799}, tmp_path / "ck.pth")
    loaded = load(tmp_path / "ck.pth", **GEOMETRY).eval()
    _same_pretrain(ours, loaded)


def test_pretrain_with_unknown_decoder_width_loads_as_classifier(tmp_path: Path) -> None:
    ours = _pretrain(decoder_embed_dim=128, decoder_num_heads=4)
    torch.save({"model": ours.state_dict()}, tmp_path / "pre.pth")
    classifier = load(tmp_path / "pre.pth", kind="classifier", num_classes=3, **GEOMETRY)
    assert classifier.num_classes == 3
    # and an override of the (dropped) decoder does not reach the classifier
    classifier = load(
        tmp_path / "pre.pth", kind="classifier", num_classes=3, decoder_num_heads=4, **GEOMETRY
    )
    assert isinstance(classifier, VideoMAEClassifier)


def test_hf_pretraining_directory_as_classifier(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    ours = _pretrain(decoder_norm_eps=checkpoints.HF_NORM_EPS)
    checkpoints.save_hf(ours, tmp_path / "hf")
    classifier = load(tmp_path / "hf", kind="classifier", num_classes=4)
    assert isinstance(classifier, VideoMAEClassifier) and classifier.num_classes == 4
    assert torch.equal(classifier.blocks[0].attn.qkv.weight, ours.encoder.blocks[0].attn.qkv.weight)


def test_new_num_classes_reinitializes_the_head(tmp_path: Path) -> None:
    ours = _classifier()  # 5 classes
    torch.save({"module": ours.state_dict()}, tmp_path / "ft.pth")
    loaded = load(tmp_path / "ft.pth", num_classes=9, **GEOMETRY)
    assert loaded.num_classes == 9
    assert torch.equal(loaded.blocks[1].mlp.fc2.weight, ours.blocks[1].mlp.fc2.weight)


def test_cli_takes_head_counts(tmp_path: Path) -> None:
    ours = _pretrain(decoder_embed_dim=128, decoder_num_heads=4)
    torch.save({"model": ours.state_dict()}, tmp_path / "pre.pth")
    out = tmp_path / "out.safetensors"
    assert convert_main([str(tmp_path / "pre.pth"), str(out)]) == 2  # width 128: heads unknown
    args = [str(tmp_path / "pre.pth"), str(out), "--decoder-num-heads", "4", "--num-frames", "4"]
    assert convert_main([*args, "--img-size", "32"]) == 0
    assert load(out).config["decoder_num_heads"] == 4
