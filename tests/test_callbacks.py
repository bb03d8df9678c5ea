"""Callbacks and run helpers: reconstruction pictures, FLOP counting and throughput numbers,
the resume rule and the resumable sampler, run names and sweep directions."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from videomae.callbacks.reconstruction import (
    SEPARATOR,
    reconstruct,
    reconstruction_grid,
    with_titles,
)
from videomae.callbacks.resume import ResumableSampler, resolve_ckpt_path
from videomae.callbacks.throughput import (
    ThroughputMonitor,
    device_peak_flops,
    pretrain_flops_by_operation,
    pretrain_train_flops,
)
from videomae.constants import IMAGENET_MEAN, IMAGENET_STD
from videomae.models.masking import DualMasking, RunningCellMasking, TubeMasking, split_mask
from videomae.models.pretrain import VideoMAEPretrain, pixel_tubelets, unpatchify
from videomae.utils.runs import failed_value, metric_direction, sanitize

TINY = dict(
    img_size=32,
    patch_size=8,
    num_frames=4,
    tubelet_size=2,
    embed_dim=32,
    depth=2,
    num_heads=2,
    decoder_embed_dim=16,
    decoder_depth=1,
    decoder_num_heads=2,
)


def normalized_clip(batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random RGB pixels in [0, 1] (B, 3, 4, 32, 32) and their ImageNet-normalized version."""
    pixels = torch.rand(batch, 3, 4, 32, 32, generator=torch.Generator().manual_seed(seed))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    return pixels, (pixels - mean) / std


def _geometry(net: VideoMAEPretrain) -> dict[str, int]:
    return {"tubelet_size": net.tubelet_size, "patch_size": net.patch_size}


@pytest.mark.parametrize("normalize_target", [True, False])
def test_reconstruct_with_perfect_prediction_gives_the_original(normalize_target: bool) -> None:
    net = VideoMAEPretrain(**TINY, normalize_target=normalize_target)
    geometry = _geometry(net)
    pixels, video = normalized_clip()
    mask = TubeMasking(0.75)(2, net.grid_size, generator=torch.Generator().manual_seed(1))
    _, masked_ids = split_mask(mask)
    perfect = torch.gather(
        net.pixel_target(video), 1, masked_ids[:, :, None].expand(-1, -1, 2 * 8 * 8 * 3)
    )
    masked, recon = reconstruct(video, mask, perfect, normalize_target=normalize_target, **geometry)
    assert recon.shape == pixels.shape
    torch.testing.assert_close(recon, pixels, atol=1e-4, rtol=0)
    # masked input: visible tokens as they are, masked tokens grey
    token_pixels = pixel_tubelets(video, **geometry)
    back = unpatchify(token_pixels, net.grid_size, **geometry)
    torch.testing.assert_close(back, pixels, atol=1e-5, rtol=0)
    grey = pixel_tubelets(masked_input_to_video(masked), **geometry)
    assert torch.allclose(grey[mask], torch.full_like(grey[mask], 0.5), atol=1e-5)
    torch.testing.assert_close(grey[~mask], token_pixels[~mask], atol=1e-5, rtol=0)
    # the V1 pair (decoder = ~mask) draws the same picture
    masked_pair, recon_pair = reconstruct(
        video, mask, perfect, ~mask, normalize_target=normalize_target, **geometry
    )
    assert torch.equal(masked_pair, masked) and torch.equal(recon_pair, recon)


def masked_input_to_video(frames: torch.Tensor) -> torch.Tensor:
    """RGB frames in [0, 1] -> ImageNet-normalized (the inverse of pixel_tubelets' first step)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    return (frames - mean) / std


def test_reconstruct_dual_masking_fills_only_decoded_tokens() -> None:
    net = VideoMAEPretrain(**TINY, normalize_target=True)
    _, video = normalized_clip()
    masking = DualMasking(TubeMasking(0.75), RunningCellMasking(0.5))
    mask, decoder_mask = masking(2, net.grid_size, generator=torch.Generator().manual_seed(3))
    _, pred = net(video, mask, decoder_mask=decoder_mask)
    kept_ids, _ = split_mask(decoder_mask)
    assert pred.shape[1] == kept_ids.shape[1]
    perfect = torch.gather(net.pixel_target(video), 1, kept_ids[:, :, None].expand_as(pred))
    geometry = _geometry(net)
    _, recon = reconstruct(video, mask, perfect, decoder_mask, normalize_target=True, **geometry)
    tokens = pixel_tubelets(masked_input_to_video(recon), **geometry)
    original = pixel_tubelets(video, **geometry)
    decoded = mask & ~decoder_mask  # masked for the encoder and predicted by the decoder
    undecoded = mask & decoder_mask
    assert decoded.any() and undecoded.any()
    torch.testing.assert_close(tokens[decoded], original[decoded], atol=1e-4, rtol=0)
    torch.testing.assert_close(tokens[~mask], original[~mask], atol=1e-4, rtol=0)
    assert torch.allclose(tokens[undecoded], torch.full_like(tokens[undecoded], 0.5), atol=1e-5)


def test_reconstruction_grid_layout() -> None:
    clips = [torch.full((2, 3, 4, 8, 10), value) for value in (0.0, 0.5, 1.0)]
    picture = reconstruction_grid(*clips, num_frames=3)
    sep = SEPARATOR
    panel_w = 3 * (10 + sep) - sep
    assert picture.shape == (2 * (8 + sep) - sep, 3 * panel_w + 6 * sep, 3)
    assert picture.dtype.name == "uint8"
    assert picture[0, 0, 0] == 0  # original panel, first frame
    assert picture[0, panel_w + 3 * sep, 0] == 128  # masked panel
    assert picture[-1, -1, 0] == 255  # reconstruction panel


def test_reconstruction_picture_has_titles() -> None:
    """The heading and the three column titles sit in a white strip above the unchanged grid."""
    clips = [torch.full((2, 3, 4, 32, 40), value) for value in (0.0, 0.5, 1.0)]
    grid = reconstruction_grid(*clips, num_frames=3)
    picture = with_titles(grid, "epoch 0 (from 0), step 40")
    strip = picture.shape[0] - grid.shape[0]
    assert strip > 20 and picture.shape[1:] == grid.shape[1:]
    np.testing.assert_array_equal(picture[strip:], grid)
    panel_w = (grid.shape[1] - 6 * SEPARATOR) // 3
    for i in range(3):  # text (dark pixels) over each panel's column
        left = i * (panel_w + 3 * SEPARATOR)
        assert (picture[strip // 2 : strip, left : left + panel_w] < 128).any(), i
    assert (picture[: strip // 2] < 128).any()  # the heading


def test_analytic_flops_match_torch_flop_counter() -> None:
    net = VideoMAEPretrain(**TINY, normalize_target=False)
    masking = TubeMasking(0.75)
    _, video = normalized_clip(batch=1)
    mask = masking(1, net.grid_size, generator=torch.Generator().manual_seed(0))
    # SDPA's math backend runs attention as batched matmuls, which the counter counts on every
    # torch version (its formulas for the fused CPU kernels come and go: 2.14 counts none)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss, _ = net(video, mask)
        loss.backward()
    counted = {str(op): flops for op, flops in counter.get_flop_counts()["Global"].items()}
    analytic = pretrain_flops_by_operation(net, masking.num_masked(net.grid_size))
    # each kind of operation against the operators that run it; layer norms, GELU, softmax and
    # the loss are counted by neither
    # the tubelet embedding runs as a matrix product too (no convolution at all)
    assert counted.pop("aten.bmm") == pytest.approx(analytic["attention"], rel=1e-6)
    matmuls = counted.pop("aten.mm") + counted.pop("aten.addmm", 0)
    assert matmuls == pytest.approx(analytic["linear"] + analytic["embed"], rel=1e-6)
    assert counted == {}
    total = pretrain_train_flops(net, masking.num_masked(net.grid_size))
    assert total == pytest.approx(counter.get_total_flops(), rel=1e-6)


def test_device_peak_flops_table() -> None:
    assert device_peak_flops("NVIDIA H100 80GB HBM3", "bf16-mixed") == 989e12
    assert device_peak_flops("NVIDIA H100 PCIe", "bf16-mixed") == 756e12
    assert device_peak_flops("NVIDIA A100-SXM4-80GB", "32-true") == 156e12
    assert device_peak_flops("NVIDIA H200", "bf16-true") == 989e12
    assert device_peak_flops("Some CPU", "bf16-mixed") is None


def test_throughput_summary_numbers() -> None:
    monitor = ThroughputMonitor(flops_per_clip=1e12, peak_flops=100e12)
    monitor.tokens_per_clip = 256
    # two steps of 0.5 s each with 0.1 s waiting for data, 8 clips per rank, 4 ranks
    monitor._window = [(0.5, 0.1, 8), (0.5, 0.1, 8)]
    trainer = SimpleNamespace(world_size=4)
    module = SimpleNamespace(device=torch.device("cpu"))
    metrics = monitor.summarize(trainer, module)  # type: ignore[arg-type]
    assert metrics["perf/clips_per_sec"] == pytest.approx(16 * 4 / 1.0)
    assert metrics["perf/tokens_per_sec"] == pytest.approx(64 * 256)
    assert metrics["perf/step_time_s"] == pytest.approx(0.5)
    assert metrics["perf/data_wait_frac"] == pytest.approx(0.2)
    # 64 clips/s x 1 TFLOP over 4 devices of 100 TFLOP/s
    assert metrics["perf/mfu"] == pytest.approx(64 * 1e12 / 400e12)
    assert metrics["perf/peak_mem_gb"] > 0.01  # this process's peak RSS


def test_resolve_ckpt_path_rules(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert resolve_ckpt_path(None, run, auto_resume=True) is None  # new run
    with pytest.raises(FileNotFoundError, match="ckpt_path=last"):
        resolve_ckpt_path("last", run, auto_resume=True)
    last = run / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"x")
    assert resolve_ckpt_path(None, run, auto_resume=True) == str(last)  # requeued job
    assert resolve_ckpt_path(None, run, auto_resume=False) is None
    assert resolve_ckpt_path("last", run, auto_resume=False) == str(last)
    other = tmp_path / "other.ckpt"
    with pytest.raises(FileNotFoundError, match=r"other\.ckpt"):
        resolve_ckpt_path(str(other), run, auto_resume=True)
    other.write_bytes(b"x")
    assert resolve_ckpt_path(str(other), run, auto_resume=True) == str(other)


class EpochDataset(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.epoch = -1

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> int:
        return index

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def test_resumable_sampler_order_skip_and_ranks() -> None:
    dataset = EpochDataset()
    sampler = ResumableSampler(dataset, seed=7)
    sampler.set_epoch(3)
    assert dataset.epoch == 3  # passed on to the dataset
    full = list(sampler)
    assert sorted(full) == list(range(10))
    assert list(sampler) == full  # the order depends on (seed, epoch) only
    sampler.skip(4)
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # skipping applies to one pass
    sampler.set_epoch(4)
    assert list(sampler) != full
    ranks = [ResumableSampler(dataset, num_replicas=2, rank=r, seed=7) for r in (0, 1)]
    shards = [list(s) for s in ranks]
    assert sorted(shards[0] + shards[1]) == list(range(10))


def test_metric_direction_and_failed_value() -> None:
    assert metric_direction("val/loss") == "minimize"
    assert metric_direction("val/acc1") == "maximize"
    assert failed_value("val/loss") == math.inf
    assert failed_value("test/acc5") == -math.inf
    assert failed_value(None) is None
    with pytest.raises(ValueError, match="val/zebra"):
        metric_direction("val/zebra")


def test_sanitize_run_names() -> None:
    assert sanitize("synthetic_pretrain-masking=tube_95,data/x=a b") == (
        "synthetic_pretrain-masking=tube_95,data.x=a_b"
    )
    long = sanitize("x" * 300)
    assert len(long) == 96 and long != sanitize("x" * 299)


def test_model_summary_hides_unmeasured_flops(capsys: pytest.CaptureFixture[str]) -> None:
    """Lightning's summary reads 0 FLOPs without an example input: ours leaves them out (and
    shows them when measured)."""
    from videomae.callbacks.console import ModelSummary

    data = [
        (" ", ["0"]),
        ("Name", ["net"]),
        ("Type", ["VideoMAEPretrain"]),
        ("Params", ["2.5 M"]),
        ("Mode", ["train"]),
        ("FLOPs", ["0"]),
    ]
    modes = {"train": 90, "eval": 0}
    ModelSummary.summarize(data, 2_500_000, 2_500_000, 9.86, modes, total_flops=0)
    shown = capsys.readouterr().out
    assert "VideoMAEPretrain" in shown and "Total params" in shown
    assert "FLOPs" not in shown
    data[-1] = ("FLOPs", ["1.2 G"])
    ModelSummary.summarize(data, 2_500_000, 2_500_000, 9.86, modes, total_flops=1_200_000_000)
    shown = capsys.readouterr().out
    assert "1.2 G" in shown and "Total FLOPs" in shown


def test_progress_bar_metrics_without_version_and_rounded(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    from videomae.callbacks.console import ProgressBar

    bar = ProgressBar()
    trainer = L.Trainer(logger=CSVLogger(tmp_path), callbacks=[bar], enable_checkpointing=False)
    trainer._logger_connector._progress_bar_metrics = {"train/loss_step": 0.0532456789}
    assert bar.get_metrics(trainer, L.LightningModule()) == {"loss": "0.05325"}


def test_progress_bar_reads_training_metrics_at_logging_steps_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a logged tensor makes the host wait for the GPU: in training the bar reads the
    metrics every log_every_n_steps steps (and at the first), not after every batch."""
    from lightning.pytorch.callbacks import RichProgressBar

    from videomae.callbacks.console import ProgressBar

    reads: list[int] = []
    lightning_read = RichProgressBar.get_metrics

    def counted(self, trainer, pl_module):
        reads.append(trainer.global_step)
        return lightning_read(self, trainer, pl_module)

    monkeypatch.setattr(RichProgressBar, "get_metrics", counted)

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            loss = self.layer(batch).pow(2).mean()
            self.log("train/loss_step", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(
        max_steps=12, log_every_n_steps=5, logger=False, enable_checkpointing=False,
        enable_model_summary=False, callbacks=[ProgressBar()], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(Module(), torch.utils.data.DataLoader(torch.randn(48, 2), batch_size=2))
    assert [s for s in reads if s not in (0, 12)] == [1, 5, 10], reads
