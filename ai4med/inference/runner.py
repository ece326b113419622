"""run_cases: a `CasePipeline` over many cases, pipelined: the next cases are prepared (read, pre-transforms)
and the previous one written on background threads while the current one is inferred.

`Prefetch` starts preparing cases as soon as it is made, so a caller can make it before it opens the
model: `ai4med infer` reads the first cases while the model's imports and checkpoint load (seconds).

A case that fails is logged and reported (`CaseResult.error`); the others go on. The caller may
look at each finished case (`on_case`: metrics, collecting masks) before the next starts.

Example:
    >>> import torch
    >>> from ai4med.common.medical_image import MedicalImage
    >>> from ai4med.components.inferers.torch_predictor import TorchInferenceContext
    >>> from ai4med.inference.pipeline import CasePipeline
    >>> p = CasePipeline(TorchInferenceContext(torch.nn.Conv3d(1, 2, 1), precision="fp32", runtime="torch"))
    >>> items = [{"image": MedicalImage(np.zeros((1, 4, 4, 4), np.float32), "CDHW")}] * 2
    >>> [r.error for r in run_cases(p, items, progress=False)]
    [None, None]
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np  # noqa: F401  (doctest namespace)

from ai4med.inference.pipeline import CaseOutput, CasePipeline

__all__ = ["CaseResult", "Prefetch", "run_cases", "case_name", "prefetch_depth"]

#: cases prepared ahead at most, and the share of the available memory they may take
MAX_PREFETCH, PREFETCH_MEMORY_SHARE = 4, 0.25

logger = logging.getLogger(__name__)


@dataclass
class CaseResult:
    """One case: its name, seconds per stage (pre, infer, post, write), files written, error."""

    name: str
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    error: str | None = None


def case_name(item: dict[str, Any], image_field: str = "image", index: int = 0) -> str:
    """The case's name: the image file's base name (first file of a multi-channel item)."""
    value = item.get(image_field)
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, (str, os.PathLike)):
        return os.path.basename(os.path.normpath(os.fspath(value)))
    return f"case_{index}"


def run_cases(
    pipeline: CasePipeline,
    items: Sequence[dict[str, Any]],
    output_dir: str | None = None,
    on_case: Callable[[dict[str, Any], CaseOutput, CaseResult], None] | None = None,
    write: bool = True,
    prefetch: int | None = None,
    progress: bool | None = None,
    desc: str = "infer",
    names: Sequence[str] | None = None,
    background_write: bool = True,
    prefetched: Prefetch | None = None,
) -> list[CaseResult]:
    """Run every item; returns one `CaseResult` per item, in order.

    Args:
        pipeline: the case template. items: datalist items (field -> path or value).
        output_dir: where the writers write. write: run the writers.
        on_case: called with (item, output, result) after a case succeeded; an exception in it
            fails that case.
        prefetch: cases prepared ahead on a background thread (0: none; None: from the first prepared
            case's size, `prefetch_depth`: as many as fit a quarter of the available memory, 1 to 4).
        progress: tqdm bar (None: only on a terminal; its rate is cases/s). names: the cases' names.
        background_write: write each case on a background thread while the next one is inferred
            (nnU-Net's predictor does the same); at most one case waits to be written. The files are
            the same as the sequential path's (`prefetch=0, background_write=False`). Post-processing
            stays on the calling thread: on 2 cores, moving it to the writer's thread slowed the network
            by as much as it saved (e2e bench, AVX2: 36.6 s against 34.1 s).
        prefetched: a `Prefetch` of these same items, already started (then `prefetch` is its own).
    """
    from tqdm import tqdm

    if prefetched is not None and prefetched.count != len(items):
        raise ValueError(f"the Prefetch holds {prefetched.count} items, not the {len(items)} to run")
    names = list(names) if names is not None else [case_name(it, pipeline.image_field, i) for i, it in enumerate(items)]
    results: list[CaseResult] = []
    writes = write and bool(pipeline.writers)
    bar = tqdm(total=len(items), unit="case", desc=desc, disable=False if progress else None if progress is None else True)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ai4med-write") if writes and background_write else None
    pending: tuple[Future, CaseResult] | None = None
    loader = prefetched if prefetched is not None else Prefetch(pipeline, items, prefetch)

    def finish(job: tuple[Future, CaseResult] | None) -> None:
        """Wait for a case's background write; a failed write fails the case."""
        if job is None:
            return
        future, result = job
        try:
            result.outputs, result.seconds["write"] = future.result()
        except Exception as e:  # reported as the case's failure; the others go on
            result.error = f"{type(e).__name__}: {e}"
            logger.error("%s failed: %s", result.name, result.error)
        else:
            _log_done(result)
        bar.update(1)

    try:
        for (item, name), (prepared, seconds) in zip(zip(items, names), loader):
            result = CaseResult(name, {"pre": seconds})
            results.append(result)
            try:
                if isinstance(prepared, BaseException):
                    raise prepared
                out = pipeline.run(item, output_dir, prepared=prepared, write=writes and writer is None)
                out.seconds["pre"] = seconds
                result.seconds, result.outputs = dict(out.seconds), list(out.outputs)
                if on_case is not None:
                    on_case(item, out, result)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one bad case is reported, the others go on
                result.error = f"{type(e).__name__}: {e}"
                logger.error("%s failed: %s", name, result.error)
                logger.debug("traceback of %s", name, exc_info=e)
                bar.update(1)
                continue
            if writer is None:
                _log_done(result)
                bar.update(1)
                continue
            finish(pending)  # at most one case waits to be written: memory stays bounded
            pending = (writer.submit(_timed_write, pipeline, out.ctx, output_dir), result)
        finish(pending)
        pending = None
    finally:
        loader.close()
        if writer is not None:
            writer.shutdown(wait=True)
        bar.close()
    return results


def _timed_write(pipeline: CasePipeline, ctx: Any, output_dir: str | None) -> tuple[list[str], float]:
    t = time.perf_counter()
    written = pipeline.write(ctx, output_dir)
    return written, time.perf_counter() - t


def _log_done(result: CaseResult) -> None:
    logger.info("%s: %s", result.name, " ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items()))


def case_bytes(ctx: Any) -> int:
    """Bytes of the arrays a prepared case holds (its images and array fields)."""
    from ai4med.common.medical_image import MedicalImage

    total = 0
    for value in (ctx.values() if isinstance(ctx, dict) else ()):
        data = value.get_data() if isinstance(value, MedicalImage) else value
        total += int(getattr(data, "nbytes", 0) or 0)
    return total


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def prefetch_depth(nbytes: int, available: int | None, cap: int = MAX_PREFETCH,
                   share: float = PREFETCH_MEMORY_SHARE) -> int:
    """Cases to prepare ahead: as many cases of `nbytes` as fit `share` of the `available` memory, 1 to `cap`
    (1 where the memory is unknown). Large volumes queue fewer: memory stays bounded by the volume size."""
    if not available or nbytes <= 0:
        return 1
    return max(1, min(cap, int(share * available // nbytes)))


def _load(pipeline: CasePipeline, item: dict[str, Any]) -> tuple[Any, float]:
    """(prepared context, or the exception it raised; seconds)."""
    t = time.perf_counter()
    try:
        return pipeline.prepare(item), time.perf_counter() - t
    except Exception as e:  # reported by the loop, in order
        return e, time.perf_counter() - t


class Prefetch:
    """The items' prepared cases, in order, `(context or exception, seconds)` each: prepared on one background
    thread from the moment this is made, at most `depth` of them ready or in progress ahead of the consumer.

    Args:
        pipeline: what prepares a case (`pipeline.prepare(item)`; the model is not needed, so the caller may
            open it meanwhile).
        items: the cases. prefetch: the depth (0: none, each case prepared when it is taken; None: sized
            from the first case's bytes and the available memory, `prefetch_depth`).
    """

    def __init__(self, pipeline: CasePipeline, items: Sequence[dict[str, Any]], prefetch: int | None = None) -> None:
        self.pipeline, self.count = pipeline, len(items)
        # re-entrant: a future done before its callback is added runs the callback inside `_fill`
        self._items, self._lock, self._closed = iter(items), threading.RLock(), False
        self._pending: deque[Future] = deque()
        self.depth = prefetch
        self._pool = (None if prefetch is not None and prefetch <= 0
                      else ThreadPoolExecutor(max_workers=1, thread_name_prefix="ai4med-load"))
        self._fill()

    def _size(self, ready: tuple[Any, float]) -> None:
        """Size the depth on the first prepared case (later cases of a folder are alike)."""
        with self._lock:
            if self.depth is None:
                self.depth = prefetch_depth(case_bytes(ready[0]), available_memory())
                logger.debug("preparing up to %d case(s) ahead", self.depth)

    def _fill(self) -> None:
        """Queue items until `depth` are ready or in progress (1 until the depth is known)."""
        if self._pool is None:
            return
        with self._lock:
            while not self._closed and len(self._pending) < (self.depth or 1):
                item = next(self._items, None)
                if item is None:
                    return
                future = self._pool.submit(_load, self.pipeline, item)
                self._pending.append(future)
                future.add_done_callback(self._loaded)

    def _loaded(self, future: Future) -> None:
        """On the loader thread: a case is ready; size the depth on the first and queue more, so cases are
        prepared ahead even before the consumer takes the first (while the model opens)."""
        if not future.cancelled():
            self._size(future.result())
            self._fill()

    def __iter__(self) -> Iterator[tuple[Any, float]]:
        if self._pool is None:
            for item in self._items:
                yield _load(self.pipeline, item)
            return
        while True:
            with self._lock:
                if not self._pending:
                    return
                future = self._pending.popleft()
            ready = future.result()
            self._size(ready)
            self._fill()
            yield ready

    def close(self) -> None:
        """Stop preparing (queued cases are dropped); waits for the case in progress."""
        with self._lock:
            self._closed = True
            for future in self._pending:
                future.cancel()
            self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
