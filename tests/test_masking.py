"""Mask generators: exact counts, tube structure, randomness, reproducibility, validation."""

from __future__ import annotations

import pytest
import torch

from videomae.models.masking import RandomMasking, TubeMasking, split_mask


def _seeded(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


@pytest.mark.parametrize(
    ("ratio", "grid"), [(0.9, (8, 14, 14)), (0.75, (4, 7, 7)), (0.5, (1, 3, 5)), (0.95, (2, 6, 6))]
)
def test_tube_mask_exact_count_per_clip(ratio: float, grid: tuple[int, int, int]) -> None:
    masking = TubeMasking(ratio)
    t, h, w = grid
    mask = masking(6, grid, device="cpu")
    assert mask.shape == (6, t * h * w)
    expected = int(ratio * h * w) * t
    assert masking.num_masked(grid) == expected
    assert mask.sum(dim=1).tolist() == [expected] * 6


def test_tube_mask_same_spatial_mask_on_every_slice() -> None:
    t, h, w = 8, 6, 6
    mask = TubeMasking(0.9)(5, (t, h, w), device="cpu").view(5, t, h * w)
    assert torch.equal(mask, mask[:, :1].expand_as(mask))
    assert mask[:, 0].sum(dim=1).tolist() == [int(0.9 * h * w)] * 5


def test_masks_differ_across_the_batch() -> None:
    for masking in (TubeMasking(0.9), RandomMasking(0.9)):
        mask = masking(8, (2, 14, 14), device="cpu")
        rows = {tuple(row.tolist()) for row in mask}
        assert len(rows) == 8, type(masking).__name__


def test_generator_makes_masks_reproducible() -> None:
    for masking in (TubeMasking(0.9), RandomMasking(0.75)):
        first = masking(4, (4, 7, 7), device="cpu", generator=_seeded(123))
        again = masking(4, (4, 7, 7), device="cpu", generator=_seeded(123))
        other = masking(4, (4, 7, 7), device="cpu", generator=_seeded(124))
        assert torch.equal(first, again)
        assert not torch.equal(first, other)


def test_mask_dtype_and_device() -> None:
    mask = TubeMasking(0.9)(2, (2, 4, 4), device=torch.device("cpu"))
    assert mask.dtype == torch.bool
    assert mask.device.type == "cpu"
    assert mask.is_contiguous()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mask_is_drawn_on_cuda() -> None:
    generator = torch.Generator(device="cuda")
    generator.manual_seed(0)
    for masking in (TubeMasking(0.9), RandomMasking(0.9)):
        mask = masking(3, (8, 14, 14), device="cuda", generator=generator)
        assert mask.device.type == "cuda"
        assert mask.sum(dim=1).tolist() == [masking.num_masked((8, 14, 14))] * 3
    # A CPU generator still gives a mask on the requested device.
    mask = TubeMasking(0.9)(3, (8, 14, 14), device="cuda", generator=_seeded(0))
    assert mask.device.type == "cuda"


@pytest.mark.parametrize("ratio", [0, 0.0, 1, 1.0, -0.1, 1.5, True])
@pytest.mark.parametrize("cls", [TubeMasking, RandomMasking])
def test_bad_ratio_raises_naming_ratio(cls: type, ratio: float) -> None:
    with pytest.raises(ValueError, match="ratio"):
        cls(ratio)


def test_ratio_too_small_for_grid_raises() -> None:
    with pytest.raises(ValueError, match="ratio"):
        TubeMasking(0.1)(2, (2, 2, 2))


def test_random_mask_exact_count_and_not_tube_shaped() -> None:
    masking = RandomMasking(0.9)
    grid = (8, 7, 7)
    mask = masking(4, grid, device="cpu")
    assert mask.sum(dim=1).tolist() == [int(0.9 * 8 * 7 * 7)] * 4
    per_slice = mask.view(4, 8, 49)
    assert not torch.equal(per_slice, per_slice[:, :1].expand_as(per_slice))


def test_tube_mask_positions_are_uniform() -> None:
    # 4000 clips, 16 positions, half masked: every position masked ~50% of the time.
    mask = TubeMasking(0.5)(4000, (1, 4, 4), device="cpu", generator=_seeded(0))
    frequency = mask.float().mean(dim=0)
    assert torch.all((frequency - 0.5).abs() < 0.05), frequency


def test_split_mask_gives_ascending_visible_and_masked_ids() -> None:
    mask = TubeMasking(0.75)(3, (2, 4, 4), device="cpu", generator=_seeded(1))
    visible, masked = split_mask(mask)
    assert visible.shape == (3, 8) and masked.shape == (3, 24)
    for row in range(3):
        assert visible[row].tolist() == torch.nonzero(~mask[row]).flatten().tolist()
        assert masked[row].tolist() == torch.nonzero(mask[row]).flatten().tolist()


def test_split_mask_rejects_unequal_rows_and_bad_masks() -> None:
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :3] = True
    mask[1, :4] = True
    with pytest.raises(ValueError, match="same number"):
        split_mask(mask)
    with pytest.raises(ValueError, match="bool"):
        split_mask(mask.long())
    with pytest.raises(ValueError, match="tokens"):
        split_mask(torch.zeros(2, 8, dtype=torch.bool), num_tokens=16)
