"""videomae-predict and videomae-extract on the shared real videos (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_VIDEOS
from videomae.cli import extract, predict
from videomae.data.device import normalize_video
from videomae.data.lists import VideoRecord
from videomae.models.registry import create_classifier, create_pretrain

pytestmark = pytest.mark.skipif(
    not SHARED_VIDEOS.is_dir(), reason=f"shared real videos not found at {SHARED_VIDEOS}"
)

VIDEOS = [
    "k400_style_340x256_h264.mp4",
    "ucf_style_320x240_mpeg4.avi",
    "ssv2_style_426x240_vp9.webm",
    "short_32frames_h264.mp4",
]
NAMES = ["walk", "run", "jump"]
DATA = {  # what Lightning stores as datamodule_hyper_parameters (the fields predict reads)
    "num_frames": 4,
    "sampling_rate": 2,
    "sampling": "dense",
    "img_size": 32,
    "test_num_clips": 2,
    "test_num_crops": 3,
    "short_side": None,
    "backend": "auto",
}


def lightning_checkpoint(path: Path, net: torch.nn.Module, kind: str, **extra) -> Path:
    """A checkpoint shaped like the ones our LightningModules save."""
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    meta = {"kind": kind, "config": dict(net.config), **extra}
    torch.save(
        {"state_dict": state, "videomae": meta, "datamodule_hyper_parameters": dict(DATA)}, path
    )
    return path


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    net = create_classifier("tiny", 3, img_size=32, num_frames=4, init_scale=1.0)
    return net.eval()


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory: pytest.TempPathFactory, classifier) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    return lightning_checkpoint(folder / "ft.ckpt", classifier, "classifier", class_names=NAMES)


def expected_probs(net: torch.nn.Module, video: Path, clips: int, crops: int) -> torch.Tensor:
    """By hand: every view of the video through the network, softmax, mean over views."""
    settings = predict.ClipSettings(
        num_frames=4, img_size=32, sampling_rate=2, num_clips=clips, num_crops=crops
    )
    views = predict.clip_dataset([VideoRecord(video, -1, 1)], settings)[0]["video"]
    views = normalize_video(views)  # uint8 from the loader, normalized as the device does
    assert views.shape == (clips * crops, 3, 4, 32, 32)
    with torch.no_grad():
        return torch.stack([net(view[None])[0].softmax(-1) for view in views]).mean(0)


def test_predict_json_top_k_with_names_and_views_from_the_checkpoint(
    classifier, classifier_ckpt: Path, capsys: pytest.CaptureFixture
) -> None:
    paths = [str(SHARED_VIDEOS / name) for name in VIDEOS[:2]]
    code = predict.main([str(classifier_ckpt), *paths, "--json", "--device", "cpu"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["errors"] == []
    assert [p["video"] for p in out["predictions"]] == paths
    for entry, path in zip(out["predictions"], paths, strict=True):
        assert entry["views"] == 6  # 2 clips x 3 crops, from the checkpoint's data settings
        probs = expected_probs(classifier, Path(path), clips=2, crops=3)
        scores, labels = probs.topk(3)
        assert [t["label"] for t in entry["top_k"]] == labels.tolist()  # 3 classes < top-5
        assert [t["name"] for t in entry["top_k"]] == [NAMES[i] for i in labels.tolist()]
        assert [t["score"] for t in entry["top_k"]] == pytest.approx(scores.tolist(), abs=1e-5)


def test_predict_text_labels_file_options_and_a_broken_video(
    tmp_path: Path, classifier, classifier_ckpt: Path, capsys: pytest.CaptureFixture
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    labels = tmp_path / "labels.txt"
    labels.write_text("A\nB\nC\n")
    video = SHARED_VIDEOS / VIDEOS[2]
    argv = [str(classifier_ckpt), str(broken), str(video), "--labels", str(labels)]
    code = predict.main([*argv, "--num-clips", "1", "--num-crops", "1", "--top-k", "2"])
    captured = capsys.readouterr()
    assert code == 1  # one video failed
    assert str(broken) in captured.err and "cannot read" in captured.err
    lines = captured.out.splitlines()
    assert lines[0] == str(video)  # the good video is still predicted
    probs = expected_probs(classifier, video, clips=1, crops=1)
    scores, top = probs.topk(2)
    for line, label, score in zip(lines[1:], top.tolist(), scores.tolist(), strict=True):
        name, value = line.split()[1:]
        assert name == "ABC"[label] and float(value) == pytest.approx(score, abs=1e-4)
    assert len(lines) == 3


def test_predict_refuses_a_pretraining_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    net = create_pretrain("tiny", img_size=32, num_frames=4)
    ckpt = lightning_checkpoint(tmp_path / "pre.ckpt", net, "pretrain")
    assert predict.main([str(ckpt), str(SHARED_VIDEOS / VIDEOS[0])]) == 2
    assert "pretrain model; a classifier is needed" in capsys.readouterr().err


def test_extract_features_one_row_per_line(
    tmp_path: Path, classifier, classifier_ckpt: Path, capsys: pytest.CaptureFixture
) -> None:
    lines = [f"{name} 0\n" for name in VIDEOS] + ["missing_video.mp4 1\n"]
    (tmp_path / "list.csv").write_text("".join(lines))
    out = tmp_path / "feats" / "features.npy"
    argv = [str(classifier_ckpt), str(tmp_path / "list.csv"), "--root", str(SHARED_VIDEOS)]
    code = extract.main([*argv, "--out", str(out), "--num-workers", "0", "--batch-size", "2"])
    captured = capsys.readouterr()
    feats = np.load(out)
    paths = (tmp_path / "feats" / "features.paths.txt").read_text().splitlines()
    if len(paths) == len(VIDEOS):  # the list reader left the missing file out (with a warning)
        assert code == 0
    else:  # or it kept it: a NaN row and exit status 1
        assert code == 1 and "missing_video.mp4" in captured.err
        assert np.isnan(feats[-1]).all()
    assert feats.dtype == np.float32 and feats.shape == (len(paths), 192)
    assert paths[: len(VIDEOS)] == [str(SHARED_VIDEOS / name) for name in VIDEOS]
    # by hand: fc_norm of the token mean of the centered clip, center crop
    settings = predict.ClipSettings(num_frames=4, img_size=32, sampling_rate=2)
    for row, name in enumerate(VIDEOS):
        view = predict.clip_dataset([VideoRecord(SHARED_VIDEOS / name, 0, 1)], settings)[0]
        with torch.no_grad():
            expected = classifier.forward_features(normalize_video(view["video"]))[0]
        np.testing.assert_allclose(feats[row], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_extract_pretraining_checkpoint_gives_encoder_mean(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = create_pretrain("tiny", img_size=32, num_frames=4).eval()
    ckpt = lightning_checkpoint(tmp_path / "pre.ckpt", net, "pretrain")
    (tmp_path / "list.csv").write_text(f"{VIDEOS[0]} 0\n")
    out = tmp_path / "f.npy"
    argv = [str(ckpt), str(tmp_path / "list.csv"), "--root", str(SHARED_VIDEOS), "--out", str(out)]
    assert extract.main([*argv, "--num-workers", "0"]) == 0
    settings = predict.ClipSettings(num_frames=4, img_size=32, sampling_rate=2)
    view = predict.clip_dataset([VideoRecord(SHARED_VIDEOS / VIDEOS[0], 0, 1)], settings)[0]
    with torch.no_grad():
        expected = net.encoder(normalize_video(view["video"])).mean(dim=1)[0]
    np.testing.assert_allclose(np.load(out)[0], expected.numpy(), rtol=1e-4, atol=1e-5)
