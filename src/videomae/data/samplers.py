"""Training samplers.

:class:`ResumableSampler` is the training loader's sampler: its order depends only on
``(seed, epoch)``, it shards the data over data-parallel ranks, and it can skip the first
samples of its next pass, which is what an exact mid-epoch resume needs (see
:mod:`videomae.callbacks.resume`, which fast-forwards it after a checkpoint is restored).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler

__all__ = ["ResumableSampler"]


class ResumableSampler(DistributedSampler):
    """Shuffled (or ordered) indices from ``(seed, epoch)`` only, sharded over ranks, able to
    skip the first samples of its next pass.

    A ``DistributedSampler`` with the rank and world size given (``num_replicas=1, rank=0`` on a
    single device), so Lightning leaves it in place under DDP.

    Args:
        dataset: the dataset; its ``set_epoch(epoch)`` is called with the sampler's if present.
        num_replicas, rank: the data-parallel world size and this process's rank.
        shuffle: a new permutation every epoch (from ``seed + epoch``).
        seed: the permutation seed (the run's seed).
        drop_last: drop the tail that does not divide by the world size (else pad).
        with_epoch: yield ``(index, epoch)`` keys instead of indices, so a dataset that accepts
            them (:class:`videomae.data.datasets.VideoClipDataset`) seeds each item from
            ``(seed, epoch, index)`` even in persistent DataLoader workers, whose copy of the
            dataset never sees ``set_epoch``.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        with_epoch: bool = False,
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self._skip = 0
        self.with_epoch = bool(with_epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order from the next pass on; tell the dataset too."""
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def skip(self, num_samples: int) -> None:
        """Leave out the first ``num_samples`` indices of the next pass (this rank's share)."""
        if num_samples < 0:
            raise ValueError(f"cannot skip {num_samples} samples")
        self._skip = int(num_samples)

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        skip, self._skip = self._skip, 0
        epoch = self.epoch  # the epoch of this pass's order, even if set_epoch is called during it
        indices = list(super().__iter__())[skip:]
        if self.with_epoch:
            yield from ((index, epoch) for index in indices)
        else:
            yield from indices
