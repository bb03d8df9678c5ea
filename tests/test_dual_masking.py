"""VideoMAE V2 dual masking: the running-cell decoder mask, the dual loss, and the training step.

Polarity: the encoder mask is True where the token is hidden from the encoder; the decoder mask
is True where the decoder drops the token (official ``decode_masked_pos``); the loss covers
``encoder & ~decoder``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from videomae.models.masking import (
    DualMasking,
    MaskPair,
    RandomMasking,
    RunningCellMasking,
    TubeMasking,
    split_mask,
    split_masks,
)
from videomae.models.pretrain import VideoMAEPretrain
from videomae.modules.pretrain import PretrainModule

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "img_size": 32,
    "patch_size": 8,
    "num_frames": 8,
    "tubelet_size": 2,
    "embed_dim": 32,
    "depth": 1,
    "num_heads": 2,
    "decoder_embed_dim": 16,
    "decoder_depth": 1,
    "decoder_num_heads": 2,
}
"""Grid (4, 4, 4): 64 tokens, 384 pixels per token."""

# The 2x2 decoder cell of each temporal slice for ratio 0.5, written out by hand from the official
# generator: queue [1, 1, 0, 0] (1 = masked for the decoder), the pointer advanced to p + t + 1
# before slice t is read, cell[i] = queue[(i + pointer) % 4], cell i at (i // 2, i % 2). Slice t of
# a clip with offset p shows CELLS_HALF[(p + t) % 4].
CELLS_HALF = [
    [[1, 0], [0, 1]],  # pointer 1: queue[1], queue[2], queue[3], queue[0]
    [[0, 0], [1, 1]],  # pointer 2
    [[0, 1], [1, 0]],  # pointer 3
    [[1, 1], [0, 0]],  # pointer 0 (4)
]


def _seeded(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _official_cell_maps(grid: tuple[int, int, int], ratio: float) -> torch.Tensor:
    """The official generator's four maps, (4, T', H' * W'), written as plain loops."""
    t_len, h_len, w_len = grid
    k = int(4 * ratio)
    queue = [1] * k + [0] * (4 - k)
    maps = []
    for start in range(4):
        pointer = start
        slices = []
        for _ in range(t_len):
            pointer += 1  # the pointer runs before each slice is read
            cell = [queue[(i + pointer) % 4] for i in range(4)]
            slices.append([cell[2 * (h % 2) + (w % 2)] for h in range(h_len) for w in range(w_len)])
        maps.append(slices)
    return torch.tensor(maps, dtype=torch.bool).reshape(4, -1)


# ---------------------------------------------------------------------------- running cell
@pytest.mark.parametrize("offset", range(4))
def test_running_cell_matches_hand_computed_masks(offset: int) -> None:
    t_len, h_len, w_len = 4, 4, 4
    pattern = RunningCellMasking(0.5).patterns((t_len, h_len, w_len))[offset]
    expected = torch.tensor(
        [
            [CELLS_HALF[(offset + t) % 4][h % 2][w % 2] for h in range(h_len) for w in range(w_len)]
            for t in range(t_len)
        ],
        dtype=torch.bool,
    ).flatten()
    assert pattern.dtype == torch.bool and pattern.shape == (t_len * h_len * w_len,)
    assert torch.equal(pattern, expected)


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("grid", [(4, 4, 4), (3, 4, 6), (8, 14, 14)])
def test_running_cell_matches_the_official_queue(ratio: float, grid: tuple[int, int, int]) -> None:
    assert torch.equal(RunningCellMasking(ratio).patterns(grid), _official_cell_maps(grid, ratio))


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75, 0.9])
def test_exact_counts_per_cell_slice_and_clip(ratio: float) -> None:
    grid = (6, 4, 6)
    masking = RunningCellMasking(ratio)
    k = int(4 * ratio)
    mask = masking(5, grid, generator=_seeded(0))
    assert mask.shape == (5, 6 * 4 * 6) and mask.dtype == torch.bool
    # every 2x2 cell of every slice drops exactly k positions and keeps 4 - k
    cells = mask.view(5, 6, 2, 2, 3, 2).permute(0, 1, 2, 4, 3, 5).reshape(5, 6, 2, 3, 4)
    assert torch.all(cells.sum(dim=-1) == k)
    assert masking.num_masked(grid) == k * 6 * 4 * 6 // 4
    assert mask.sum(dim=1).tolist() == [masking.num_masked(grid)] * 5


def test_pattern_rolls_one_position_per_slice() -> None:
    table = RunningCellMasking(0.5).patterns((8, 2, 2)).view(4, 8, 4)  # (offset, t, cell)
    for t in range(7):
        # slice t + 1 shows at cell position c what slice t showed at c + 1
        assert torch.equal(table[:, t + 1], table[:, t].roll(-1, dims=-1))
    # consecutive offsets are the same run, one slice apart
    assert torch.equal(table[1, :-1], table[0, 1:])
    # over any 4 consecutive slices every position is dropped exactly twice
    windows = table.unfold(1, 4, 1).sum(dim=-1)
    assert torch.all(windows == 2)


def test_offsets_are_drawn_per_clip_and_reproducible() -> None:
    masking = RunningCellMasking(0.5)
    grid = (4, 4, 4)
    table = masking.patterns(grid)
    mask = masking(64, grid, generator=_seeded(3))
    offsets = [next(p for p in range(4) if torch.equal(row, table[p])) for row in mask]
    assert set(offsets) == {0, 1, 2, 3}
    assert torch.equal(mask, masking(64, grid, generator=_seeded(3)))
    assert not torch.equal(mask, masking(64, grid, generator=_seeded(4)))
    assert mask.is_contiguous()


def test_odd_grid_crops_the_tiled_pattern() -> None:
    masking = RunningCellMasking(0.5)
    even = masking.patterns((4, 4, 6)).view(4, 4, 4, 6)
    odd = masking.patterns((4, 3, 5)).view(4, 4, 3, 5)
    assert torch.equal(odd, even[:, :, :3, :5])
    # with T' a multiple of 4 the count does not depend on the offset: offsets per clip
    mask = masking(64, (4, 3, 5), generator=_seeded(0))
    assert len({tuple(row.tolist()) for row in mask}) == 4
    assert mask.sum(dim=1).tolist() == [masking.num_masked((4, 3, 5))] * 64


def test_odd_grid_with_offset_dependent_count_shares_one_offset() -> None:
    masking = RunningCellMasking(0.5)
    grid = (2, 3, 3)
    counts = masking.patterns(grid).sum(dim=1)
    assert len(set(counts.tolist())) > 1
    with pytest.raises(ValueError, match="offset"):
        masking.num_masked(grid)
    for seed in range(8):
        mask = masking(6, grid, generator=_seeded(seed))
        assert torch.equal(mask, mask[:1].expand_as(mask))


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0, 1.0, True])
def test_running_cell_bad_ratio_raises(ratio: float) -> None:
    with pytest.raises(ValueError, match="ratio"):
        RunningCellMasking(ratio)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_running_cell_on_cuda() -> None:
    mask = RunningCellMasking(0.5)(3, (8, 14, 14), device="cuda", generator=_seeded(0))
    assert mask.device.type == "cuda" and mask.sum(dim=1).tolist() == [784] * 3


# ---------------------------------------------------------------------------- dual masking
def test_dual_masking_returns_both_masks() -> None:
    dual = DualMasking(TubeMasking(0.9), RunningCellMasking(0.5))
    grid = (8, 14, 14)
    pair = dual(4, grid, device="cpu", generator=_seeded(7))
    assert isinstance(pair, MaskPair) and isinstance(pair, tuple)
    encoder, decoder = pair
    assert encoder.shape == decoder.shape == (4, 8 * 14 * 14)
    # the encoder mask is drawn first from the same generator
    assert torch.equal(encoder, TubeMasking(0.9)(4, grid, generator=_seeded(7)))
    assert decoder.sum(dim=1).tolist() == [784] * 4
    assert dual.ratio == 0.9 and dual.num_masked(grid) == TubeMasking(0.9).num_masked(grid)
    # tube x running cell with T' = 8: every masked spatial position is kept on half the slices
    assert (encoder & ~decoder).sum(dim=1).tolist() == [176 * 4] * 4


def test_every_masking_gives_a_mask_pair() -> None:
    """Tube and random masking pair their mask with a decoder that reconstructs every masked
    token (V1); dual masking's pair is its two masks. The counts say the same."""
    grid = (8, 14, 14)
    for masking in (TubeMasking(0.9), RandomMasking(0.75)):
        pair = masking.pair(3, grid, generator=_seeded(2))
        assert isinstance(pair, MaskPair)
        assert torch.equal(pair.encoder, masking(3, grid, generator=_seeded(2)))
        assert torch.equal(pair.decoder, ~pair.encoder)
        assert masking.num_decoded(grid) == masking.num_masked(grid)
    dual = DualMasking(TubeMasking(0.9), RunningCellMasking(0.5))
    pair = dual.pair(3, grid, generator=_seeded(2))
    again = dual(3, grid, generator=_seeded(2))
    assert torch.equal(pair.encoder, again.encoder) and torch.equal(pair.decoder, again.decoder)
    assert dual.num_decoded(grid) == int((~pair.decoder[0]).sum()) == 784


def test_masking_configs_instantiate() -> None:
    dual = hydra.utils.instantiate(OmegaConf.load(ROOT / "configs/masking/dual_90.yaml"))
    assert dual == DualMasking(TubeMasking(0.9), RunningCellMasking(0.5))
    random = hydra.utils.instantiate(OmegaConf.load(ROOT / "configs/masking/random_90.yaml"))
    assert random == RandomMasking(0.9)


# ---------------------------------------------------------------------------- the network
def _batch(model: VideoMAEPretrain, batch_size: int, seed: int = 0):
    video = torch.randn(batch_size, 3, model.num_frames, 32, 32, generator=_seeded(seed))
    dual = DualMasking(TubeMasking(0.75), RunningCellMasking(0.5))
    encoder, decoder = dual(batch_size, model.grid_size, generator=_seeded(seed + 1))
    return video, encoder, decoder


def _official_dual(model: VideoMAEPretrain, video, mask, decode_mask):
    """The official V2 forward and loss, written with boolean indexing (row-major = ascending)."""
    b = video.shape[0]
    x_vis = model.encoder_to_decoder(model.encoder(video, mask))
    pos = model.pos_embed.expand(b, -1, -1)
    dim = pos.shape[-1]
    pos_vis = pos[~mask].reshape(b, -1, dim)
    pos_dec = pos[~decode_mask].reshape(b, -1, dim)
    full = torch.cat([x_vis + pos_vis, model.mask_token + pos_dec], dim=1)
    out = model.decoder(full, pos_dec.shape[1])
    patches = model.pixel_target(video)
    labels = patches[~decode_mask].reshape(b, -1, patches.shape[-1])
    weight = mask[~decode_mask].reshape(b, -1).float()
    loss = (((out - labels) ** 2).mean(dim=-1) * weight).sum() / weight.sum()
    return loss, out


def test_dual_loss_and_pred_match_the_official_computation(one_thread: None) -> None:
    torch.manual_seed(0)
    model = VideoMAEPretrain(**TINY).eval()
    video, mask, decoder_mask = _batch(model, 3)
    loss, pred = model(video, mask, decoder_mask=decoder_mask)
    kept = int((~decoder_mask[0]).sum())
    assert pred.shape == (3, kept, 2 * 8 * 8 * 3) and kept == 32
    assert loss.dtype == torch.float32 and loss.ndim == 0
    with torch.no_grad():
        ref_loss, ref_pred = _official_dual(model, video, mask, decoder_mask)
    assert torch.allclose(pred, ref_pred, atol=1e-5)
    assert torch.allclose(loss, ref_loss, atol=1e-6)


def test_loss_is_the_mean_over_encoder_masked_decoder_kept_tokens(one_thread: None) -> None:
    torch.manual_seed(0)
    model = VideoMAEPretrain(**{**TINY, "num_frames": 4}).eval()  # T' = 2: counts vary per clip
    video, mask, decoder_mask = _batch(model, 4, seed=5)
    covered = mask & ~decoder_mask
    loss, pred = model(video, mask, decoder_mask=decoder_mask)
    target = model.pixel_target(video)
    errors = []
    for b in range(4):
        kept = torch.nonzero(~decoder_mask[b]).flatten().tolist()  # pred rows, ascending
        for row, token in enumerate(kept):
            if covered[b, token]:
                errors.append(((pred[b, row] - target[b, token]) ** 2).mean())
    assert len(errors) == int(covered.sum())
    assert torch.allclose(loss, torch.stack(errors).mean(), atol=1e-6)


def test_decoder_mask_of_the_visible_tokens_is_videomae_v1(one_thread: None) -> None:
    torch.manual_seed(0)
    model = VideoMAEPretrain(**TINY).eval()
    video, mask, _ = _batch(model, 2)
    loss_v1, pred_v1 = model(video, mask)
    loss, pred = model(video, mask, decoder_mask=~mask)
    assert torch.allclose(pred, pred_v1, atol=1e-6)
    assert torch.allclose(loss, loss_v1, atol=1e-6)


def test_no_gradient_from_tokens_the_decoder_drops_or_the_encoder_sees(one_thread: None) -> None:
    torch.manual_seed(0)
    model = VideoMAEPretrain(**TINY)
    video, mask, decoder_mask = _batch(model, 2, seed=2)
    loss, pred = model(video, mask, decoder_mask=decoder_mask)
    pred.retain_grad()
    loss.backward()
    kept_ids = [torch.nonzero(~row).flatten() for row in decoder_mask]
    weight = torch.stack([mask[b, ids] for b, ids in enumerate(kept_ids)])  # (B, K)
    row_grad = pred.grad.abs().sum(dim=-1)
    assert torch.all(row_grad[~weight] == 0)  # kept but seen by the encoder: no loss
    assert torch.all(row_grad[weight] > 0)

    # the pixels of tokens masked for the encoder and dropped by the decoder do not matter,
    # those of a token masked and kept do
    _, h_len, w_len = model.grid_size
    dropped = mask & decoder_mask
    covered = mask & ~decoder_mask

    def perturbed(tokens: torch.Tensor) -> torch.Tensor:
        out = video.clone()
        b, token = (int(i) for i in torch.nonzero(tokens)[0])
        t, h, w = token // (h_len * w_len), (token // w_len) % h_len, token % w_len
        noise = torch.randn(3, 2, 8, 8)
        out[b, :, 2 * t : 2 * t + 2, 8 * h : 8 * h + 8, 8 * w : 8 * w + 8] += noise
        return out

    model.eval()
    with torch.no_grad():
        base, _ = model(video, mask, decoder_mask=decoder_mask)
        same, _ = model(perturbed(dropped), mask, decoder_mask=decoder_mask)
        other, _ = model(perturbed(covered), mask, decoder_mask=decoder_mask)
    assert torch.equal(base, same)
    assert not torch.allclose(base, other)


def test_bad_decoder_masks_raise(one_thread: None) -> None:
    model = VideoMAEPretrain(**TINY)
    video, mask, decoder_mask = _batch(model, 2)
    uneven = decoder_mask.clone()
    uneven[0, torch.nonzero(~uneven[0])[0]] = True
    with pytest.raises(ValueError, match=r"decoder_mask.*same number"):
        model(video, mask, decoder_mask=uneven)
    with pytest.raises(ValueError, match="decoder_mask"):
        model(video, mask, decoder_mask=decoder_mask[:, :-1])
    with pytest.raises(ValueError, match="decoder_mask"):
        model(video, mask, decoder_mask=decoder_mask.long())


# ---------------------------------------------------------------------------- training step
class _RandomClips(Dataset):
    def __init__(self, count: int, frames: int) -> None:
        self.videos = torch.randn(count, 3, frames, 32, 32, generator=_seeded(0))

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"video": self.videos[index]}


class _TinyData(L.LightningDataModule):
    def train_dataloader(self) -> DataLoader:
        return DataLoader(_RandomClips(4, TINY["num_frames"]), batch_size=2)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_RandomClips(2, TINY["num_frames"]), batch_size=2)


def _one_step_trainer(**kwargs) -> L.Trainer:
    """A CPU trainer for one training (and validation) step, quiet, writing nothing."""
    return L.Trainer(
        fast_dev_run=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_training_step_with_dual_masking(
    one_thread: None, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(0)
    dual = hydra.utils.instantiate(OmegaConf.load(ROOT / "configs/masking/dual_90.yaml"))
    module = PretrainModule(
        net=VideoMAEPretrain(**TINY),
        masking=dual,
        batch_size=2,
        optim={"base_lr": 1e-3, "warmup_steps": 0, "weight_decay": 0.05},
    )
    # validation masks stay seeded: both masks of the pair repeat
    first = module.draw_mask(2, torch.device("cpu"), seed=0)
    again = module.draw_mask(2, torch.device("cpu"), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))

    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    trainer = _one_step_trainer()
    with caplog.at_level("INFO", logger="videomae.modules.pretrain"):
        trainer.fit(module, datamodule=_TinyData())
    assert "dual masking: the decoder reconstructs 32 of 64 tokens" in caplog.text
    assert torch.isfinite(trainer.callback_metrics["train/loss_step"])
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
    after = module.net.state_dict()
    assert not torch.equal(before["mask_token"], after["mask_token"])


def test_training_step_with_dual_masking_on_an_odd_grid(one_thread: None) -> None:
    """On grid (2, 7, 7) the running cell's count depends on the offset (one offset per batch):
    the step, its report and the throughput counts must not need a fixed count."""
    from videomae.callbacks.throughput import ThroughputMonitor

    torch.manual_seed(0)
    net = VideoMAEPretrain(**{**TINY, "img_size": 56, "num_frames": 4})
    assert net.grid_size == (2, 7, 7)
    module = PretrainModule(
        net=net,
        masking=DualMasking(TubeMasking(0.75), RunningCellMasking(0.5)),
        batch_size=2,
        optim={"base_lr": 1e-3, "warmup_steps": 0, "weight_decay": 0.05},
    )
    videos = torch.randn(4, 3, 4, 56, 56, generator=_seeded(1))
    loader = DataLoader([{"video": v} for v in videos], batch_size=2)
    trainer = _one_step_trainer(callbacks=[ThroughputMonitor()])
    trainer.fit(module, train_dataloaders=loader)
    assert torch.isfinite(trainer.callback_metrics["train/loss_step"])


def test_split_masks_reads_both_masks_like_split_mask() -> None:
    grid = (4, 4, 4)
    pair = DualMasking(TubeMasking(0.75), RunningCellMasking(0.5))(3, grid, generator=_seeded(4))
    together = split_masks(pair.encoder, pair.decoder, num_tokens=64)
    for (a, b), mask in zip(together, pair, strict=True):
        c, d = split_mask(mask, 64)
        assert torch.equal(a, c) and torch.equal(b, d)


@pytest.mark.parametrize(
    "masking",
    [
        TubeMasking(0.75),
        RandomMasking(0.5),
        DualMasking(TubeMasking(0.75), RunningCellMasking(0.5)),
    ],
)
def test_known_counts_split_without_reading_the_device(masking) -> None:
    """The generators' ``pair_counts`` are their masks' row counts; given them, the masks split
    as when the counts are read from the masks, and the network's loss and prediction are the
    same. A count that does not match is caught (an asynchronous assert: at once on the CPU)."""
    grid = (4, 4, 4)
    pair = masking.pair(3, grid, generator=_seeded(5))
    counts = masking.pair_counts(grid)
    assert counts == (int(pair.encoder.sum(1)[0]), int(pair.decoder.sum(1)[0]))
    read = split_masks(pair.encoder, pair.decoder, num_tokens=64)
    known = split_masks(pair.encoder, pair.decoder, num_tokens=64, counts=counts)
    for (a, b), (c, d) in zip(read, known, strict=True):
        assert torch.equal(a, c) and torch.equal(b, d)
    with pytest.raises(RuntimeError):
        split_masks(pair.encoder, pair.decoder, counts=(counts[0] + 1, counts[1]))
    model = VideoMAEPretrain(**{**TINY, "img_size": 32, "num_frames": 8}).eval()
    assert model.grid_size == grid
    video = torch.randn(3, 3, 8, 32, 32, generator=_seeded(6))
    plain = model(video, pair.encoder, pair.decoder)
    fast = model(video, pair.encoder, pair.decoder, counts)
    assert torch.equal(plain[0], fast[0]) and torch.equal(plain[1], fast[1])


def test_counts_unknown_on_an_odd_grid_where_they_depend_on_the_offset() -> None:
    masking = DualMasking(TubeMasking(0.75), RunningCellMasking(0.5))
    assert masking.pair_counts((2, 3, 3)) is None
