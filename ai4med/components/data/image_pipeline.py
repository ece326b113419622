"""Image pipelines: datalist -> transform chain -> batches of torch tensors (Clara's ImagePipeline family).

`SegmentationImagePipeline` / `ClassificationImagePipeline` take Clara's arguments; their
`...WithCache` forms add the smart cache. Loading runs in torch DataLoader workers; every
random draw comes from `(seed, epoch, sample index)`, so the batches do not depend on the
number of workers. With `rank` / `world_size` each process reads a disjoint shard.

Iterating a pipeline yields one epoch of batches (dicts: field -> tensor, e.g.
`batch["image"]` of shape (B, C, D, H, W)) and then advances the epoch.

Example:
    >>> import numpy as np
    >>> from ai4med.common.medical_image import MedicalImage
    >>> class Load:
    ...     def transform(self, ctx):
    ...         ctx["image"] = MedicalImage(np.full((1, 4, 4), ctx["image"], np.float32), "CHW")
    ...         return ctx
    >>> p = SegmentationImagePipeline(data_list=[{"image": 1.0}, {"image": 2.0}], transforms=[Load()],
    ...                               output_crop_size=[4, 4], output_batch_size=2, num_workers=0, seed=0)
    >>> batch = next(iter(p))
    >>> tuple(batch["image"].shape)
    (2, 1, 4, 4)
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ai4med.common.transform_ctx import TransformContext
from ai4med.components.data.dataset import Collator, SampleKey, TransformDataset, run_chain, worker_init
from ai4med.components.data.sampling import epoch_order, new_seed, order_rng, sample_rng, shard_indices
from ai4med.components.data.smart_cache import SmartCache, deterministic_prefix_length

__all__ = [
    "ImagePipeline",
    "SegmentationImagePipeline",
    "ClassificationImagePipeline",
    "ImagePipelineWithCache",
    "SegmentationImagePipelineWithCache",
    "ClassificationImagePipelineWithCache",
]

logger = logging.getLogger(__name__)

_CACHE_ORDER_STREAM = 2


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def skip_sigchld_handler() -> None:
    """Keep torch's DataLoader from installing its Python SIGCHLD handler in this process.

    Why: with that handler, every exit of a worker (or of any child process) makes Python run signal
    handling while other threads run Python code, and on CPython 3.11 that crashed our processes: a
    segfault inside the bytecode loop of a short-lived thread during a multi-worker DataLoader
    iteration, seen in ~1 of 3 full test runs, in core dumps (see CPython issue 111363; the
    traceback faulthandler would print then crashes too, CPython issue 116008). Nothing is lost: a
    worker that dies is still reported, by the loader's own check when its queue times out (5 s).
    """
    from torch.utils.data._utils import signal_handling

    if not getattr(signal_handling, "_SIGCHLD_handler_set", True):
        signal_handling._SIGCHLD_handler_set = True


class ImagePipeline:
    """Base of the image pipelines (Clara's argument names).

    Args:
        data_list_file_path: the Decathlon-style datalist JSON.
        data_file_base_dir: root of the relative paths in the datalist (None: its folder).
        data_list_key: the list to read ("training", "validation", ...).
        output_crop_size: expected spatial size of the output images; -1 entries accept any size.
        transforms: the built pre-transforms (or set later with `set_transforms`).
        output_data_format: "channels_first" (default) or "channels_last".
        output_data_dims: 2 or 3 (informational; the transforms decide the data).
        output_image_channels, output_label_channels: expected channel counts (None: not checked).
        output_image_dtype, output_label_dtype: output dtypes (numpy names; None keeps the data's).
        output_label_format: classification label format (kept for the workflow).
        output_batch_size: datalist items per batch; with batch-by-transform crops a batch
            holds output_batch_size * N samples.
        batched_by_transforms: the chain ends in a batching crop (N samples per item); such
            crops are split into samples whether or not this is set.
        num_workers: DataLoader worker processes (0: load in the calling process).
        prefetch_size: items loaded ahead (spread over the workers).
        shuffle: reshuffle the items every epoch.
        repeat: `get_next_batch` cycles through epochs forever (iteration is per epoch).
        duplicate_count: each item is visited this many times per epoch (different draws).
        extra_inputs: extra datalist fields to output (all fields are output by default).
        batch_transforms: transforms applied to each stacked batch (e.g. MergeBatchDims).
        items_per_category, category_weights: class-balanced sampling (classification).
        seed: seed of every random draw (None: a fresh random seed).
        rank, world_size: this process's shard (None: from torch.distributed, else 0 / 1).
        data_list: the items directly, instead of a datalist file.
        output_properties: add `batch["properties"]` (per-sample image properties).
        drop_last: drop a last, smaller batch.
        image_field, label_field: names of the image and label fields.
    """

    task = "segmentation"

    def __init__(
        self,
        data_list_file_path: str | None = None,
        data_file_base_dir: str | None = None,
        data_list_key: str = "training",
        output_crop_size: Sequence[int] | None = None,
        transforms: Sequence[Any] | None = None,
        output_data_format: str = "channels_first",
        output_data_dims: int = 3,
        output_image_channels: int | None = None,
        output_label_channels: int | None = None,
        output_image_dtype: str | None = "float32",
        output_label_dtype: str | None = None,
        output_label_format: Any = None,
        output_batch_size: int = 10,
        batched_by_transforms: bool = False,
        num_workers: int = 4,
        prefetch_size: int = 20,
        shuffle: bool = True,
        repeat: bool = True,
        duplicate_count: int = 1,
        extra_inputs: Sequence[str] | None = None,
        batch_transforms: Sequence[Any] | None = None,
        items_per_category: Sequence[int] | None = None,
        category_weights: Sequence[float] | None = None,
        seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        data_list: Sequence[dict[str, Any]] | None = None,
        output_properties: bool = False,
        drop_last: bool = False,
        image_field: str = "image",
        label_field: str = "label",
    ) -> None:
        if output_data_format not in ("channels_first", "channels_last"):
            raise ValueError(f"output_data_format must be 'channels_first' or 'channels_last', got {output_data_format!r}")
        if int(output_batch_size) < 1:
            raise ValueError(f"output_batch_size must be >= 1, got {output_batch_size}")
        if data_list is None and data_list_file_path is None:
            raise ValueError("give data_list_file_path (a datalist JSON) or data_list (the items)")
        self.data_list_file_path = data_list_file_path
        self.data_file_base_dir = data_file_base_dir
        self.data_list_key = data_list_key
        self.output_crop_size = list(output_crop_size) if output_crop_size is not None else None
        self.output_data_format = output_data_format
        self.output_data_dims = output_data_dims
        self.output_image_channels = output_image_channels
        self.output_label_channels = output_label_channels
        self.output_image_dtype = output_image_dtype
        self.output_label_dtype = output_label_dtype
        self.output_label_format = output_label_format
        self.output_batch_size = int(output_batch_size)
        self.batched_by_transforms = bool(batched_by_transforms)
        self.num_workers = max(0, int(num_workers))
        self.prefetch_size = max(0, int(prefetch_size))
        self.shuffle = bool(shuffle)
        self.repeat = bool(repeat)
        self.duplicate_count = max(1, int(duplicate_count))
        self.extra_inputs = list(extra_inputs) if extra_inputs else []
        self.items_per_category = items_per_category
        self.category_weights = category_weights
        self.seed = int(seed) if seed is not None else new_seed()
        r, w = _dist_rank_world()
        self.rank = int(rank) if rank is not None else r
        self.world_size = int(world_size) if world_size is not None else w
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside world_size {self.world_size}")
        self.output_properties = output_properties
        self.drop_last = drop_last
        self.image_field = image_field
        self.label_field = label_field
        self._transforms: list[Any] = list(transforms or [])
        self._batch_transforms: list[Any] = list(batch_transforms or [])
        self._epoch = 0
        self._skip = 0
        self._items = self._load_items(data_list)
        self._shard = self._make_shard()

    # --- data list and shard ---------------------------------------------------------
    def _load_items(self, data_list: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
        if data_list is not None:
            return [dict(it) if isinstance(it, dict) else {self.image_field: it} for it in data_list]
        from ai4med.io.datalist import load_datalist

        return load_datalist(self.data_list_file_path, self.data_list_key, self.data_file_base_dir)

    def _make_shard(self) -> list[tuple[int, int]]:
        """`[(global sample index, item position), ...]` of this rank (padding uses the shard's first item)."""
        n = len(self._items)
        if n == 0:
            return []
        virtual = shard_indices(n, self.world_size)[self.rank]
        first = int(virtual[0]) if virtual[0] < n else 0
        return [(int(v), int(v) if v < n else first) for v in virtual]

    def get_data_list(self) -> list[dict[str, Any]]:
        """All items of the datalist (every rank)."""
        return list(self._items)

    def get_shard(self) -> list[dict[str, Any]]:
        """The items this rank reads (padded to the common shard length)."""
        return [self._items[p] for _, p in self._shard]

    def get_dataset_size(self) -> int:
        return len(self._items)

    # --- transforms ---------------------------------------------------------------
    @property
    def transforms(self) -> list[Any]:
        return self._transforms

    @transforms.setter
    def transforms(self, value: Sequence[Any]) -> None:
        self.set_transforms(value)

    def set_transforms(self, transforms: Sequence[Any]) -> None:
        self._transforms = list(transforms or [])

    def get_transforms(self) -> list[Any]:
        return list(self._transforms)

    def set_batch_transforms(self, batch_transforms: Sequence[Any]) -> None:
        self._batch_transforms = list(batch_transforms or [])

    def get_batch_transforms(self) -> list[Any]:
        return list(self._batch_transforms)

    # --- epochs ---------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def get_epoch(self) -> int:
        return self._epoch

    def skip_batches(self, n: int) -> None:
        """The next iteration starts at batch `n` of its epoch, without loading the skipped items
        (a training run resumed mid-epoch)."""
        self._skip = max(0, int(n))

    def _take_skip(self, keys: list[SampleKey]) -> list[SampleKey]:
        skip, self._skip = self._skip, 0
        return keys[skip * self.output_batch_size:] if skip else keys

    def _categories(self, positions: Sequence[int]) -> list[int] | None:
        if self.items_per_category is None and self.category_weights is None:
            return None
        cats = []
        for p in positions:
            lab = self._items[p].get(self.label_field)
            arr = np.asarray(lab)
            cats.append(int(arr) if arr.ndim == 0 else int(np.argmax(arr)))
        return cats

    def _epoch_keys(self, epoch: int, entries: Sequence[tuple[int, int]]) -> list[SampleKey]:
        """The epoch's sample keys: entries (index, position) shuffled / balanced, duplicated."""
        cats = self._categories([p for _, p in entries])
        order = epoch_order(
            [i for i, _ in entries], self.seed, epoch, self.shuffle, cats, self.category_weights, self.items_per_category
        )
        keys = []
        for o in order:
            idx, pos = entries[int(o)]
            for d in range(self.duplicate_count):
                # distinct samples for duplicates and repeated class-balanced draws
                keys.append(SampleKey(epoch, idx * self.duplicate_count + d, pos, idx))
        if cats is not None:  # repeated draws of one item get distinct indices
            seen: dict[int, int] = {}
            uniq = []
            n = max(1, len(self._items) * self.duplicate_count)
            for k in keys:
                c = seen.get(k.index, 0)
                seen[k.index] = c + 1
                uniq.append(SampleKey(k.epoch, k.index + c * n, k.position, k.item))
            keys = uniq
        return keys

    # --- loading --------------------------------------------------------------------
    def _collator(self) -> Collator:
        return Collator(
            batch_transforms=self._batch_transforms,
            image_field=self.image_field,
            label_field=self.label_field,
            image_dtype=self.output_image_dtype,
            label_dtype=self.output_label_dtype,
            channels_last=self.output_data_format == "channels_last",
            crop_size=self.output_crop_size,
            image_channels=self.output_image_channels,
            label_channels=self.output_label_channels,
            output_properties=self.output_properties,
            seed=self.seed,
        )

    def _dataset(self) -> TransformDataset:
        return TransformDataset(self._items, self._transforms, self.seed)

    def _loader(self, dataset: TransformDataset, keys: list[SampleKey]) -> torch.utils.data.DataLoader:
        kwargs: dict[str, Any] = {}
        if self.num_workers > 0:
            skip_sigchld_handler()
            per_worker_batches = math.ceil(self.prefetch_size / (self.output_batch_size * self.num_workers))
            kwargs["prefetch_factor"] = max(1, per_worker_batches) if self.prefetch_size else 2
            kwargs["worker_init_fn"] = worker_init(self.seed)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.output_batch_size,
            sampler=keys,
            collate_fn=self._collator(),
            num_workers=self.num_workers,
            drop_last=self.drop_last,
            **kwargs,
        )

    def _entries_for_epoch(self) -> list[tuple[int, int]]:
        return self._shard

    def epoch_keys(self, epoch: int | None = None) -> list[SampleKey]:
        """The sample keys of an epoch on this rank, in loading order."""
        return self._epoch_keys(self._epoch if epoch is None else epoch, self._entries_for_epoch())

    def _iterate_epoch(self) -> Iterator[dict[str, Any]]:
        keys = self._take_skip(self.epoch_keys())
        if not keys:
            return
        yield from self._loader(self._dataset(), keys)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """One epoch of batches; the epoch counter advances once the epoch is exhausted.

        A partly consumed epoch does not advance the counter (use `set_epoch`). With the
        smart cache every new iteration starts a new cache epoch (replacements are swapped in).
        """
        yield from self._iterate_epoch()
        self._epoch += 1

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.epoch_keys())
        return n // self.output_batch_size if self.drop_last else -(-n // self.output_batch_size)

    def get_next_batch(self) -> Iterator[dict[str, Any]]:
        """An endless batch stream across epochs (one epoch when `repeat` is False)."""
        while True:
            yield from iter(self)
            if not self.repeat:
                return

    def process_sample(self, index: int, epoch: int | None = None) -> list[dict[str, Any]]:
        """Run the chain on the shard's sample `index` in the calling process (debugging, tests)."""
        idx, pos = self._shard[index]
        return self._dataset()[SampleKey(self._epoch if epoch is None else epoch, idx, pos)][1]

    def shutdown(self) -> None:
        """Release background resources (none here)."""


class SegmentationImagePipeline(ImagePipeline):
    """Image + label-map pipeline for segmentation (Clara's SegmentationImagePipeline).

    See `ImagePipeline` for the arguments.

    Example:
        >>> # {"name": "SegmentationImagePipeline", "args": {"data_list_file_path": "{DATASET_JSON}",
        >>> #  "data_file_base_dir": "{DATA_ROOT}", "data_list_key": "training",
        >>> #  "output_crop_size": [96, 96, 96], "output_batch_size": 2, "num_workers": 4}}
    """

    task = "segmentation"


class ClassificationImagePipeline(ImagePipeline):
    """Image + class-label pipeline (labels come from the datalist: an index or a vector).

    See `ImagePipeline` for the arguments; `items_per_category` / `category_weights` give
    class-balanced sampling, with categories read from each item's label (index or argmax).

    Example:
        >>> # {"name": "ClassificationImagePipeline", "args": {"data_list_file_path": "{DATASET_JSON}",
        >>> #  "data_file_base_dir": "{DATA_ROOT}", "data_list_key": "training",
        >>> #  "output_crop_size": [224, 224], "output_batch_size": 16, "category_weights": [1, 3]}}
    """

    task = "classification"

    def __init__(self, *args: Any, output_label_dtype: str | None = "float32", **kwargs: Any) -> None:
        super().__init__(*args, output_label_dtype=output_label_dtype, **kwargs)


# ------------------------------------------------------------------------------------------------
# smart cache
# ------------------------------------------------------------------------------------------------
class ImagePipelineWithCache(ImagePipeline):
    """An image pipeline with Smart Cache: the deterministic prefix of the chain runs once per cached item.

    An epoch is one pass over the `num_cache_objects` cached items (per rank); each epoch
    `ceil(num_cache_objects * replace_percent)` of them are replaced by new items, prepared
    in a background thread during the previous epoch.

    Args:
        num_cache_objects: items held per rank (<= 0 or >= shard size: the whole shard, no replacement).
        replace_percent: share of the cache replaced each epoch (0 .. 1).
        num_cache_init_workers: threads used to fill the cache the first time.
        (others): see `ImagePipeline`.
    """

    def __init__(
        self,
        *args: Any,
        num_cache_objects: int = 100,
        replace_percent: float = 0.1,
        num_cache_init_workers: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= float(replace_percent) <= 1.0:
            raise ValueError(f"replace_percent must be in [0, 1], got {replace_percent}")
        self.num_cache_objects = int(num_cache_objects)
        self.replace_percent = float(replace_percent)
        self.num_cache_init_workers = int(num_cache_init_workers)
        self._cache: SmartCache | None = None
        self._cache_view: dict[int, TransformContext] = {}
        self._positions = dict(self._shard)

    def set_transforms(self, transforms: Sequence[Any]) -> None:
        super().set_transforms(transforms)
        if getattr(self, "_cache", None) is not None:
            self._cache.shutdown()
            self._cache = None  # the prefix changed: rebuild the cache

    @property
    def prefix_length(self) -> int:
        """Number of leading (deterministic) transforms whose outputs are cached."""
        return deterministic_prefix_length(self._transforms)

    def _load_cached(self, index: int) -> TransformContext:
        item = self._items[self._positions[index]]
        ctx = TransformContext(dict(item), rng=sample_rng(self.seed, 0, index))
        return run_chain(self._transforms[: self.prefix_length], ctx)

    def _ensure_cache(self) -> SmartCache:
        if self._cache is None:
            order = [i for i, _ in self._shard]
            if self.shuffle:
                perm = order_rng(self.seed, 0, _CACHE_ORDER_STREAM).permutation(len(order))
                order = [order[int(p)] for p in perm]
            self._cache = SmartCache(
                self._load_cached,
                order,
                self.num_cache_objects,
                self.replace_percent,
                background=True,
                num_init_workers=self.num_cache_init_workers,
            )
        return self._cache

    def cached_indices(self) -> list[int]:
        """Global sample indices currently in the cache (oldest first)."""
        return self._ensure_cache().indices()

    def _entries_for_epoch(self) -> list[tuple[int, int]]:
        cache = self._ensure_cache()
        if not cache.current:  # before the first epoch: what the first epoch will hold
            return [(i, self._positions[i]) for i in cache.order[: cache.size]]
        return [(i, self._positions[i]) for i in cache.indices()]

    def _dataset(self) -> TransformDataset:
        n = self.prefix_length
        return TransformDataset(self._items, self._transforms[n:], self.seed, cache=self._cache_view,
                                prefix=self._transforms[:n])

    def _iterate_epoch(self) -> Iterator[dict[str, Any]]:
        cache = self._ensure_cache()
        self._cache_view = cache.begin_epoch()
        keys = self._take_skip(self._epoch_keys(self._epoch, [(i, self._positions[i]) for i in cache.indices()]))
        if not keys:
            return
        loader_iter = iter(self._loader(self._dataset(), keys))  # workers fork here, before the thread starts
        cache.launch_replacement()
        yield from loader_iter

    def shutdown(self) -> None:
        if self._cache is not None:
            self._cache.shutdown()


class SegmentationImagePipelineWithCache(ImagePipelineWithCache, SegmentationImagePipeline):
    """`SegmentationImagePipeline` with Smart Cache (`num_cache_objects`, `replace_percent`).

    Example:
        >>> # {"name": "SegmentationImagePipelineWithCache", "args": {"data_list_file_path": "{DATASET_JSON}",
        >>> #  "data_file_base_dir": "{DATA_ROOT}", "data_list_key": "training", "output_crop_size": [96, 96, 96],
        >>> #  "output_batch_size": 1, "batched_by_transforms": true, "num_cache_objects": 40, "replace_percent": 0.25}}
    """


class ClassificationImagePipelineWithCache(ImagePipelineWithCache, ClassificationImagePipeline):
    """`ClassificationImagePipeline` with Smart Cache (`num_cache_objects`, `replace_percent`)."""


# ------------------------------------------------------------------------------------------------
# explicit signatures (the config engine checks args against them; the classes forward **kwargs)
# ------------------------------------------------------------------------------------------------
def _signature(defaults: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> inspect.Signature:
    base = inspect.signature(ImagePipeline.__init__)
    params = [p for name, p in base.parameters.items() if name != "self"]
    if defaults:
        params = [p.replace(default=defaults[p.name]) if p.name in defaults else p for p in params]
    for name, default in (extra or {}).items():
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
    return inspect.Signature(params)


_CACHE_ARGS = {"num_cache_objects": 100, "replace_percent": 0.1, "num_cache_init_workers": 1}
ClassificationImagePipeline.__signature__ = _signature({"output_label_dtype": "float32"})  # type: ignore[attr-defined]
ImagePipelineWithCache.__signature__ = _signature(extra=_CACHE_ARGS)  # type: ignore[attr-defined]
SegmentationImagePipelineWithCache.__signature__ = _signature(extra=_CACHE_ARGS)  # type: ignore[attr-defined]
ClassificationImagePipelineWithCache.__signature__ = _signature(  # type: ignore[attr-defined]
    {"output_label_dtype": "float32"}, extra=_CACHE_ARGS
)
