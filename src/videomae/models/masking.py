"""Mask generators for masked video pretraining, and helpers to split a mask into token indices.

Everything here is a pure tensor function: no modules, no parameters, no I/O. A mask is a bool
tensor ``(B, N)`` over the token grid ``(T', H', W')`` flattened in ``(t h w)`` order
(``N = T' * H' * W'``, token ``t * H' * W' + h * W' + w``); ``True`` means *masked* (hidden from the
encoder, predicted by the decoder), as in the official VideoMAE code and HF transformers.

Generators are called as ``masking(batch_size, grid, device, generator=None)`` and draw on the
device with ``argsort`` of uniform noise, so a batch of masks costs one small kernel and no copy
from the host. Every clip gets exactly the same number of masked tokens, which the model needs to
gather the visible tokens into a dense ``(B, N_visible, C)`` tensor.

VideoMAE V2's dual masking adds a second mask for the decoder: :class:`RunningCellMasking` draws
it and :class:`DualMasking` returns both as a :class:`MaskPair`. Every masking the pretraining
module uses (tube, random, dual) has ``pair(batch_size, grid, device, generator)``, which returns
a :class:`MaskPair` (V1: the decoder reconstructs every masked token, ``decoder = ~encoder``),
``num_masked(grid)`` and ``num_decoded(grid)``. The decoder mask has the polarity
of the official ``decode_masked_pos``: ``True`` = *dropped by the decoder* (no mask token, not
reconstructed, no loss); ``False`` = kept (the decoder predicts it). The loss covers the tokens that
are masked for the encoder and kept by the decoder, ``encoder & ~decoder``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

Grid = tuple[int, int, int]
"""The token grid ``(T', H', W')``: temporal slices (frames / tubelet) and spatial patches."""


def _check_ratio(ratio: float) -> float:
    """``ratio`` as a float, or ValueError naming ``ratio`` unless ``0 < ratio < 1``."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise ValueError(f"ratio must be a number in (0, 1), got {ratio!r}")
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"ratio must be in (0, 1) (the fraction of masked tokens), got {ratio}")
    return float(ratio)


def _check_grid(grid: Grid) -> Grid:
    """``grid`` as a tuple of three positive ints, or ValueError."""
    if len(grid) != 3 or any(int(g) != g or g <= 0 for g in grid):
        raise ValueError(f"grid must be three positive ints (T', H', W'), got {grid!r}")
    return int(grid[0]), int(grid[1]), int(grid[2])


def _noise(
    rows: int, cols: int, device: torch.device | str | None, generator: torch.Generator | None
) -> torch.Tensor:
    """Uniform noise ``(rows, cols)`` on ``device``, drawn with ``generator`` where given.

    The noise is drawn on the generator's own device (a CPU generator cannot fill a CUDA tensor)
    and moved to ``device`` when the two differ.
    """
    draw_device = generator.device if generator is not None else device
    noise = torch.rand(rows, cols, device=draw_device, generator=generator)
    return noise.to(device) if device is not None else noise


def _lowest_k(noise: torch.Tensor, k: int) -> torch.Tensor:
    """Bool ``(B, M)``: True at the ``k`` smallest noise values of each row (a random k-subset)."""
    order = torch.argsort(noise, dim=1)
    mask = torch.zeros_like(noise, dtype=torch.bool)
    return mask.scatter_(1, order[:, :k], True)


class MaskPair(NamedTuple):
    """The masks of one batch, each bool ``(B, N)`` in ``(t h w)`` order: what every masking's
    :meth:`pair` returns and the pretraining network takes (``net(video, *pair)``).

    Attributes:
        encoder: True = masked (hidden from the encoder), as every mask of this module.
        decoder: True = dropped by the decoder (no mask token, not reconstructed, no loss);
            False = kept. The loss covers ``encoder & ~decoder``. VideoMAE V1 reconstructs
            every masked token: ``decoder = ~encoder``.
    """

    encoder: torch.Tensor
    decoder: torch.Tensor


@dataclass(frozen=True)
class _EncoderMasking:
    """What the encoder mask generators share: the ratio check and the V1 pair."""

    ratio: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", _check_ratio(self.ratio))

    def num_masked(self, grid: Grid) -> int:
        """Masked tokens per clip on ``grid``."""
        raise NotImplementedError

    def num_decoded(self, grid: Grid) -> int:
        """Tokens per clip the decoder reconstructs: every masked one."""
        return self.num_masked(grid)

    def pair(
        self,
        batch_size: int,
        grid: Grid,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> MaskPair:
        """``MaskPair(mask, ~mask)``: the encoder mask, and a decoder that reconstructs every
        masked token (VideoMAE V1)."""
        mask = self(batch_size, grid, device=device, generator=generator)
        return MaskPair(mask, ~mask)

    def pair_counts(self, grid: Grid) -> tuple[int, int]:
        """The True count of every row of :meth:`pair`'s masks on ``grid``: masked for the
        encoder, dropped by the decoder (the visible tokens)."""
        t, h, w = _check_grid(grid)
        return self.num_masked(grid), t * h * w - self.num_masked(grid)


@dataclass(frozen=True)
class TubeMasking(_EncoderMasking):
    """Tube masking (VideoMAE V1): one random spatial mask per clip, repeated over time.

    Every clip masks exactly ``int(ratio * H' * W')`` spatial positions, the same ones on each of
    the ``T'`` temporal slices, so ``int(ratio * H' * W') * T'`` tokens in all; clips of a batch
    draw independent masks.

    Args:
        ratio: the fraction of spatial positions masked, in (0, 1) (0.9 in the paper).
    """

    def num_masked(self, grid: Grid) -> int:
        """Masked tokens per clip on ``grid`` ``(T', H', W')``: ``int(ratio * H' * W') * T'``."""
        t, h, w = _check_grid(grid)
        per_slice = int(self.ratio * h * w)
        if per_slice == 0:
            raise ValueError(
                f"ratio {self.ratio} masks no spatial position of a {h}x{w} token grid; "
                "raise the ratio or the number of patches"
            )
        return per_slice * t

    def __call__(
        self,
        batch_size: int,
        grid: Grid,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Masks of ``batch_size`` clips on ``grid`` (``model.grid_size``), drawn on ``device``
        (with ``generator`` where given): bool ``(B, T' * H' * W')``, True = masked."""
        t, h, w = _check_grid(grid)
        per_slice = self.num_masked(grid) // t
        spatial = _lowest_k(_noise(batch_size, h * w, device, generator), per_slice)  # (B, H'W')
        return spatial[:, None, :].expand(batch_size, t, h * w).reshape(batch_size, t * h * w)


@dataclass(frozen=True)
class RandomMasking(_EncoderMasking):
    """Random masking over all space-time tokens (the MAE/ST-MAE baseline).

    Every clip masks exactly ``int(ratio * T' * H' * W')`` tokens chosen uniformly at random.

    Args:
        ratio: the fraction of tokens masked, in (0, 1).
    """

    def num_masked(self, grid: Grid) -> int:
        """Masked tokens per clip on ``grid`` ``(T', H', W')``: ``int(ratio * T' * H' * W')``."""
        t, h, w = _check_grid(grid)
        count = int(self.ratio * t * h * w)
        if count == 0:
            raise ValueError(f"ratio {self.ratio} masks no token of a {t}x{h}x{w} token grid")
        return count

    def __call__(
        self,
        batch_size: int,
        grid: Grid,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw masks for ``batch_size`` clips: bool ``(B, T' * H' * W')``, True = masked."""
        t, h, w = _check_grid(grid)
        return _lowest_k(_noise(batch_size, t * h * w, device, generator), self.num_masked(grid))


CELL = 4
"""Positions of a running cell: a 2x2 spatial block, numbered ``2 * (h % 2) + (w % 2)``."""


@dataclass(frozen=True)
class RunningCellMasking:
    """The decoder mask of VideoMAE V2: a running 2x2 cell, True = dropped by the decoder.

    The token grid is tiled with 2x2 spatial cells; cell position ``c = 2 * (h % 2) + (w % 2)``
    (raster order inside the cell). Of the four positions of every cell, ``k = int(4 * ratio)``
    are dropped on each temporal slice and ``4 - k`` are kept, and the pattern runs by one
    position per slice: with the clip's offset ``p`` (0..3, drawn uniformly per clip), token
    ``(t, h, w)`` is dropped iff ``(c + p + t + 1) % 4 < k``. This is the official
    ``RunningCellMaskingGenerator``: a queue ``[1] * k + [0] * (4 - k)`` read from pointer
    ``p + t + 1`` (it advances the pointer before reading each slice), ``1`` = masked for the
    decoder (``decode_masked_pos``), and one of the four precomputed maps drawn per clip; offset
    ``p`` here gives its map ``p``.

    Over any four consecutive slices every position is dropped exactly ``k`` times, so with the
    paper's ``ratio = 0.5`` the decoder reconstructs half of the tokens, each spatial position on
    every other pair of slices.

    Odd grids (the official code requires even ``H'`` and ``W'``): the pattern is tiled over
    ``ceil(H' / 2) x ceil(W' / 2)`` cells and cropped to ``H' x W'`` (the last row / column
    keeps the top / left half of its cells). The number of dropped tokens of a clip may then
    depend on its offset (when ``T'`` is not a multiple of 4); on such grids all clips of a
    batch share one drawn offset, so that every row keeps the same number of tokens (the model
    needs a dense ``(B, K, D)`` decoder input). On even grids every clip draws its own offset.

    Args:
        ratio: the fraction of each cell dropped by the decoder; ``int(4 * ratio)`` must be 1, 2
            or 3, i.e. ``0.25 <= ratio < 1`` (0.5 in the paper).
    """

    ratio: float = 0.5

    def __post_init__(self) -> None:
        ratio = _check_ratio(self.ratio)
        if not 1 <= int(CELL * ratio) < CELL:
            raise ValueError(
                f"ratio must drop 1 to 3 of the 4 positions of a running cell "
                f"(0.25 <= ratio < 1), got {ratio}"
            )
        object.__setattr__(self, "ratio", ratio)

    @property
    def dropped_per_cell(self) -> int:
        """Positions of each 2x2 cell dropped on every temporal slice: ``int(4 * ratio)``."""
        return int(CELL * self.ratio)

    def patterns(self, grid: Grid, device: torch.device | str | None = None) -> torch.Tensor:
        """The four possible decoder masks, one per offset: bool ``(4, T' * H' * W')``.

        Row ``p`` is the mask of a clip with offset ``p``; True = dropped by the decoder,
        tokens in ``(t h w)`` order.
        """
        t, h, w = _check_grid(grid)
        rows = torch.arange(h, device=device)
        cols = torch.arange(w, device=device)
        cell = (2 * (rows[:, None] % 2) + cols[None, :] % 2).reshape(1, 1, h * w)
        slices = torch.arange(t, device=device).view(1, t, 1)
        offsets = torch.arange(CELL, device=device).view(CELL, 1, 1)
        phase = (cell + offsets + slices + 1) % CELL  # (4, T', H'W')
        return (phase < self.dropped_per_cell).reshape(CELL, t * h * w)

    def num_masked(self, grid: Grid) -> int:
        """Tokens per clip dropped by the decoder on ``grid`` ``(T', H', W')``.

        ``int(4 * ratio) * T' * H' * W' / 4`` on even grids. Raises ValueError on an odd grid
        where the count depends on the clip's offset.
        """
        counts = self.patterns(grid).sum(dim=1).tolist()
        if len(set(counts)) != 1:
            raise ValueError(
                f"on grid {tuple(grid)} the running cell drops {sorted(set(counts))} tokens "
                "depending on the offset; clips of a batch share one offset there"
            )
        return int(counts[0])

    def __call__(
        self,
        batch_size: int,
        grid: Grid,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decoder masks of ``batch_size`` clips on ``grid``, drawn on ``device`` (offsets from
        ``generator`` where given): bool ``(B, T' * H' * W')``, True = dropped by the decoder
        (not reconstructed), False = kept; the same number kept in every row."""
        key = torch.device(device) if device is not None else None
        if key is not None and key.type == "cuda" and key.index is None:
            key = torch.device("cuda", torch.cuda.current_device())  # one entry per GPU
        table, shared = _running_cell_table(self, tuple(grid), key)
        draw_device = generator.device if generator is not None else device
        offsets = torch.randint(
            CELL, (1 if shared else batch_size,), device=draw_device, generator=generator
        )
        offsets = offsets.to(table.device).expand(batch_size)
        return table[offsets]


@functools.lru_cache(maxsize=16)
def _running_cell_table(
    masking: RunningCellMasking, grid: tuple[int, ...], device: torch.device | str | None
) -> tuple[torch.Tensor, bool]:
    """``masking.patterns(grid)`` on ``device``, and whether the clips of a batch share one
    offset on ``grid`` (the rows drop different counts), made once per masking, grid and device:
    the count is read on the host, so drawing masks never waits for the device."""
    counts = masking.patterns(grid).sum(dim=1)
    return masking.patterns(grid, device=device), bool((counts != counts[0]).any())


@dataclass(frozen=True)
class DualMasking:
    """Dual masking (VideoMAE V2): an encoder mask and a running-cell decoder mask per clip.

    ``masking(batch_size, grid, device, generator)`` returns a :class:`MaskPair`; the network is
    called as ``net(video, pair.encoder, decoder_mask=pair.decoder)``. The encoder mask is drawn
    first, then the decoder mask, from the same ``generator`` when one is given.

    Args:
        encoder: the encoder's mask generator (:class:`TubeMasking` in the paper, ratio 0.9).
        decoder: the decoder's mask generator (:class:`RunningCellMasking`, ratio 0.5).
    """

    encoder: TubeMasking | RandomMasking
    decoder: RunningCellMasking

    @property
    def ratio(self) -> float:
        """The encoder's masking ratio (the fraction of tokens hidden from the encoder)."""
        return self.encoder.ratio

    def num_masked(self, grid: Grid) -> int:
        """Tokens per clip masked for the encoder on ``grid`` (the encoder generator's count)."""
        return self.encoder.num_masked(grid)

    def num_decoded(self, grid: Grid) -> int:
        """Tokens per clip the decoder reconstructs (keeps) on ``grid``."""
        t, h, w = _check_grid(grid)
        return t * h * w - self.decoder.num_masked(grid)

    def __call__(
        self,
        batch_size: int,
        grid: Grid,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> MaskPair:
        """Draw both masks: ``MaskPair(encoder, decoder)``, each bool ``(B, T' * H' * W')``."""
        encoder = self.encoder(batch_size, grid, device=device, generator=generator)
        decoder = self.decoder(batch_size, grid, device=device, generator=generator)
        return MaskPair(encoder, decoder)

    pair = __call__

    def pair_counts(self, grid: Grid) -> tuple[int, int] | None:
        """The True count of every row of the encoder and the decoder mask on ``grid``; None on
        an odd grid where the decoder's count depends on the drawn offset."""
        try:
            return self.encoder.num_masked(grid), self.decoder.num_masked(grid)
        except ValueError:
            return None


def _check_mask(mask: torch.Tensor, num_tokens: int | None, name: str) -> None:
    """ValueError naming ``name`` unless ``mask`` is a 2-D bool mask of ``num_tokens`` tokens."""
    if mask.dtype != torch.bool or mask.ndim != 2:
        raise ValueError(
            f"{name} must be a bool tensor (B, N), got {mask.dtype} {tuple(mask.shape)}"
        )
    if num_tokens is not None and mask.shape[1] != num_tokens:
        raise ValueError(
            f"{name} has {mask.shape[1]} tokens per clip but the model has {num_tokens}"
        )


def split_masks(
    *masks: torch.Tensor, num_tokens: int | None = None, counts: Sequence[int] | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`split_mask` of several masks of one batch, reading their counts in one device sync;
    with ``counts`` (each mask's True count per row, as its generator made it) none: the counts
    are then checked on the device (an asynchronous assert) instead of read.

    Returns ``(visible_ids, masked_ids)`` per mask (for a decoder mask: the kept and the dropped
    tokens' indices). Errors name ``mask`` for the first and ``decoder_mask`` for the second.
    """
    names = ["mask", "decoder_mask", *(f"mask {i}" for i in range(2, len(masks)))]
    for mask, name in zip(masks, names, strict=False):
        _check_mask(mask, num_tokens, name)
        if mask.shape != masks[0].shape:
            raise ValueError(
                f"{name} must have the shape of mask {tuple(masks[0].shape)}, "
                f"got {tuple(mask.shape)}"
            )
    if counts is not None:
        if len(counts) != len(masks):
            raise ValueError(f"counts has {len(counts)} values for {len(masks)} masks")
        for mask, count in zip(masks, counts, strict=True):
            # with a message: the form torch.compile keeps (it drops the bare one)
            torch._assert_async((mask.sum(dim=1) == count).all(), "mask count differs")
        bounds = [(int(c), int(c)) for c in counts]
    else:  # one (min, max) pair of masked counts per mask, read in a single synchronization
        bounds = torch.stack([torch.stack(m.sum(dim=1).aminmax()) for m in masks]).tolist()
    out = []
    for mask, name, (low, high) in zip(masks, names, bounds, strict=False):
        if low != high:
            prefix = "" if name == "mask" else f"{name}: "
            raise ValueError(
                f"{prefix}every clip must mask the same number of tokens; got between {low} and "
                f"{high} masked tokens per row in a batch of {mask.shape[0]}"
            )
        # A stable sort of 0 (visible) / 1 (masked) keys lists visible tokens first, masked
        # after, each group in ascending token order.
        order = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)
        n = mask.shape[1]
        out.append((order[:, : n - int(low)], order[:, n - int(low) :]))
    return out


def split_mask(
    mask: torch.Tensor, num_tokens: int | None = None, count: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token indices of the visible and of the masked tokens of each clip, both ascending.

    Args:
        mask: bool ``(B, N)``, True = masked; every row must mask the same number of tokens.
        num_tokens: the model's ``N``; checked against ``mask.shape[1]`` when given.
        count: the masked tokens per row when known (the generator's): not read from the
            device (see :func:`split_masks`).

    Returns:
        ``(visible_ids, masked_ids)``: long ``(B, N - M)`` and ``(B, M)`` with ``M`` masked tokens
        per row, each row in ascending token order (the order of the official code's
        ``x[~mask].reshape(B, -1, C)``).

    Raises:
        ValueError: on a mask that is not 2-D bool, has the wrong length, or whose rows mask
            different numbers of tokens. Reading the counts synchronizes with the device once.
    """
    return split_masks(mask, num_tokens=num_tokens, counts=None if count is None else [count])[0]
