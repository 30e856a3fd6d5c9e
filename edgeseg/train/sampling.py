"""A sampler wrapper that skips the first indices of an epoch, to resume in the middle of one."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class SkipSampler(torch.utils.data.Sampler[int]):
    """Yields ``base``'s indices after dropping the first ``skip`` (reset ``skip`` to 0 for later epochs).

    Skipped samples are never loaded, so resuming late in an epoch costs nothing.
    """

    def __init__(self, base: torch.utils.data.Sampler[int], skip: int = 0) -> None:
        self.base = base
        self.skip = skip

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to ``base`` (a DistributedSampler reshuffles per epoch)."""
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        for i, index in enumerate(self.base):
            if i >= self.skip:
                yield index

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)
