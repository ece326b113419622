"""Smart Cache: keep the outputs of the deterministic prefix of a chain, replace a share per epoch.

Clara's scheme: the cache holds `num_cache_objects` items, each the output of the longest
prefix of deterministic transforms; an epoch is one pass over the cache; during an epoch a
background thread prepares `ceil(num_cache_objects * replace_percent)` new items, which
replace the oldest ones when the next epoch starts. Items enter in a fixed (seeded) order,
cycling through the dataset, so the cache of epoch e is the same in every run.

Example:
    >>> calls = []
    >>> cache = SmartCache(lambda i: calls.append(i) or i * 10, order=[0, 1, 2, 3], num_cache_objects=2,
    ...                    replace_percent=0.5, background=False)
    >>> sorted(cache.begin_epoch().values()), sorted(cache.begin_epoch().values())
    ([0, 10], [10, 20])
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ai4med.common.transform_ctx import TransformContext

__all__ = ["SmartCache", "deterministic_prefix_length"]

logger = logging.getLogger(__name__)


def deterministic_prefix_length(transforms: Sequence[Any]) -> int:
    """Number of leading transforms whose `is_deterministic()` is True."""
    n = 0
    for t in transforms:
        is_det = getattr(t, "is_deterministic", None)
        if is_det is None or not is_det():
            break
        n += 1
    return n


class SmartCache:
    """A rotating cache of `load(index)` results.

    Args:
        load: index -> cached value (the prefix output of that item).
        order: the indices in the order they enter the cache (cycled).
        num_cache_objects: cache size; <= 0 or >= len(order) caches everything (no replacement).
        replace_percent: share of the cache replaced per epoch (ceil(N * r) items).
        background: prepare replacements in a background thread (else at `begin_epoch`).
        num_init_workers: threads used to fill the cache initially.
    """

    def __init__(
        self,
        load: Callable[[int], Any],
        order: Sequence[int],
        num_cache_objects: int,
        replace_percent: float,
        background: bool = True,
        num_init_workers: int = 1,
    ) -> None:
        self.load = load
        self.order = [int(i) for i in order]
        total = len(self.order)
        self.size = total if num_cache_objects <= 0 or num_cache_objects >= total else int(num_cache_objects)
        r = int(math.ceil(self.size * float(replace_percent))) if replace_percent > 0 else 0
        self.replace_num = max(0, min(r, total - self.size))
        self.background = background
        self.num_init_workers = max(1, int(num_init_workers))
        self._entries: list[tuple[int, Any]] = []  # oldest first
        self._cursor = 0
        self._pending: list[tuple[int, Any]] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._started = False
        self.current: dict[int, Any] = {}

    # --- filling --------------------------------------------------------------------
    def _next_indices(self, k: int) -> list[int]:
        out = [self.order[(self._cursor + j) % len(self.order)] for j in range(k)]
        self._cursor = (self._cursor + k) % max(1, len(self.order))
        return out

    def _fill(self) -> None:
        idx = self._next_indices(self.size)
        if self.num_init_workers > 1 and len(idx) > 1:
            with ThreadPoolExecutor(self.num_init_workers) as pool:
                values = list(pool.map(self.load, idx))
        else:
            values = [self.load(i) for i in idx]
        self._entries = list(zip(idx, values))

    def _prepare(self, idx: list[int]) -> None:
        try:
            self._pending = [(i, self.load(i)) for i in idx]
        except BaseException as e:  # re-raised in the main thread at the next swap
            self._error = e

    def launch_replacement(self) -> None:
        """Start preparing the next epoch's replacements (call once the epoch's workers started)."""
        if self.replace_num <= 0 or self._thread is not None or self._pending is not None:
            return
        idx = self._next_indices(self.replace_num)
        if self.background:
            self._thread = threading.Thread(target=self._prepare, args=(idx,), name="smart-cache", daemon=True)
            self._thread.start()
        else:
            self._prepare(idx)

    def _swap(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if self._pending:
            k = len(self._pending)
            self._entries = self._entries[k:] + self._pending
            logger.debug("smart cache: replaced %d of %d items", k, self.size)
        self._pending = None

    def begin_epoch(self) -> dict[int, Any]:
        """Bring the cache to the next epoch: fill it the first time, else swap in the replacements.

        Returns a new dict `index -> value` (never mutated afterwards, so loaders forked for an
        epoch keep a consistent view). Without a background thread the replacement for the
        following epoch is prepared here too.
        """
        if not self._started:
            self._fill()
            self._started = True
        else:
            if self._thread is None and self._pending is None:
                self.launch_replacement()
            self._swap()
        self.current = dict(self._entries)
        return self.current

    def indices(self) -> list[int]:
        return [i for i, _ in self._entries]

    def shutdown(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def load_prefix(transforms: Sequence[Any], item: dict[str, Any], rng_factory: Callable[[], Any]) -> TransformContext:
    """Run the deterministic `transforms` on a fresh context of `item` (for the cache)."""
    from ai4med.components.data.dataset import run_chain

    return run_chain(transforms, TransformContext(dict(item), rng=rng_factory()))
