"""Seeds, shards and per-epoch sample orders: everything random in a pipeline, from (seed, epoch, index).

A sample's generator depends only on the pipeline seed, the epoch and the sample's global
index, never on the worker that computes it, so 0, 1 or 8 loader workers give identical
batches. Shards are fixed per rank (Clara: "datasets sharded per rank, short shards padded
with the first item"); each epoch reshuffles within the shard.

Example:
    >>> [s.tolist() for s in shard_indices(5, 2)]
    [[0, 2, 4], [1, 3, 5]]
    >>> int(sample_rng(0, 1, 2).integers(100)) == int(sample_rng(0, 1, 2).integers(100))
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["sample_rng", "order_rng", "shard_indices", "epoch_order", "new_seed"]

_SAMPLE, _ORDER, _CACHE = 0, 1, 2


def new_seed() -> int:
    """A fresh random seed (for pipelines built without one)."""
    return int(np.random.SeedSequence().generate_state(1)[0])


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample `index` in `epoch` (independent of workers and ranks)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SAMPLE, int(epoch), int(index)]))


def order_rng(seed: int, epoch: int, stream: int = _ORDER) -> np.random.Generator:
    """The generator that orders the samples of `epoch` (shuffle, class-balanced draws)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(epoch)]))


def shard_indices(num_items: int, world_size: int) -> list[np.ndarray]:
    """Virtual indices of each rank's shard: rank r gets r, r + W, r + 2W, ... (equal lengths).

    Indices >= `num_items` are padding: the pipeline loads the shard's first item for them
    (with its own seed, so padding samples differ from the original one).
    """
    world_size = max(1, int(world_size))
    per = -(-num_items // world_size) if num_items else 0
    return [np.arange(per, dtype=np.int64) * world_size + r for r in range(world_size)]


def epoch_order(
    indices: Sequence[int] | np.ndarray,
    seed: int,
    epoch: int,
    shuffle: bool,
    categories: Sequence[int] | None = None,
    category_weights: Sequence[float] | None = None,
    items_per_category: Sequence[int] | None = None,
) -> np.ndarray:
    """The positions (into `indices`) to visit in `epoch`.

    Default: all positions, shuffled when `shuffle`. With `categories` (one per position):
    `items_per_category[c]` positions drawn from category c (with replacement), or, with
    `category_weights`, `len(indices)` positions drawn with probability ∝ weight of their category.
    """
    n = len(indices)
    rng = order_rng(seed, epoch)
    if categories is not None and (items_per_category is not None or category_weights is not None):
        cats = np.asarray(categories)
        if items_per_category is not None:
            picks = []
            for c, k in enumerate(items_per_category):
                pool = np.flatnonzero(cats == c)
                if k and pool.size:
                    picks.append(rng.choice(pool, size=int(k), replace=True))
            order = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
            if shuffle:
                rng.shuffle(order)
            return order.astype(np.int64)
        w = np.asarray(category_weights, dtype=np.float64)[cats]
        if w.sum() <= 0:
            raise ValueError("category_weights give every item zero weight")
        return rng.choice(n, size=n, replace=True, p=w / w.sum()).astype(np.int64)
    order = np.arange(n, dtype=np.int64)
    if shuffle:
        rng.shuffle(order)
    return order
