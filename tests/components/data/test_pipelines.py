"""Image pipelines: batches, seeding independent of workers, sharding, batch-by-transform, smart cache."""

from __future__ import annotations

import inspect
import json
import math
import os

import numpy as np
import pytest
import torch
from fresh_process import in_fresh_process

from ai4med.common.medical_image import MedicalImage
from ai4med.components.data import catalog
from ai4med.components.data.image_pipeline import (
    ClassificationImagePipeline,
    ClassificationImagePipelineWithCache,
    SegmentationImagePipeline,
    SegmentationImagePipelineWithCache,
)
from ai4med.components.data.sampling import shard_indices
from ai4med.components.data.smart_cache import SmartCache, deterministic_prefix_length
from ai4med.components.transforms.crop import (
    CropByPosNegRatio,
    CropSubVolumePosNegRatioCtrlEpoch,
    CropSubVolumeRandomWithinBounds,
)

SHAPE = (16, 16, 16)


class LoadNpy:
    """Test loader: path -> CDHW MedicalImage; counts its calls (in this process)."""

    def __init__(self, fields=("image", "label")):
        self.fields = list(fields)
        self.calls: list[str] = []

    def is_deterministic(self):
        return True

    def transform(self, ctx):
        for f in self.fields:
            self.calls.append(ctx[f])
            ctx[f] = MedicalImage(np.load(ctx[f])[None], "CDHW", {"affine": np.eye(4)})
        return ctx


class AddNoise:
    """A random transform (draws from the context generator)."""

    def is_deterministic(self):
        return False

    def transform(self, ctx):
        img = ctx.get_image("image")
        noise = ctx.get_rng().normal(size=img.shape).astype(np.float32)
        ctx.set_image("image", img.new_image(img.get_data() + noise))
        return ctx


class RecordBatch:
    """A batch transform: marks the batch and checks it sees a batched image."""

    def transform(self, ctx):
        img = ctx.get_image("image")
        assert img.get_shape_format().has_batch()
        ctx["batch_size_seen"] = np.full(img.shape[0], img.shape[0])
        return ctx


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    items = []
    rng = np.random.default_rng(0)
    for i in range(7):
        img = rng.normal(size=SHAPE).astype(np.float32) + i * 10
        lab = np.zeros(SHAPE, np.uint8)
        lab[4 + i % 3 : 9 + i % 3, 5:10, 6:11] = 1
        np.save(root / f"img{i}.npy", img)
        np.save(root / f"lab{i}.npy", lab)
        items.append({"image": f"img{i}.npy", "label": f"lab{i}.npy", "cls": i % 2})
    with open(root / "datalist.json", "w") as f:
        json.dump({"training": items, "validation": items[:2]}, f)
    return str(root)


def seg(dataset, transforms, **kw):
    args = dict(
        data_list_file_path=os.path.join(dataset, "datalist.json"),
        data_file_base_dir=dataset,
        data_list_key="training",
        output_crop_size=[8, 8, 8],
        output_batch_size=2,
        num_workers=0,
        seed=42,
    )
    args.update(kw)
    return SegmentationImagePipeline(transforms=transforms, **args)


def collect(pipeline, epochs=1):
    out = []
    for _ in range(epochs):
        out.extend(list(pipeline))
    return out


def test_registry_lists_the_four_pipelines():
    names = catalog.REGISTRY.names()
    assert names == sorted([
        "SegmentationImagePipeline", "ClassificationImagePipeline",
        "SegmentationImagePipelineWithCache", "ClassificationImagePipelineWithCache",
    ])
    for n in names:
        cls = catalog.REGISTRY.get(n)
        params = inspect.signature(cls).parameters
        for arg in ("data_list_file_path", "data_file_base_dir", "data_list_key", "output_crop_size",
                    "output_batch_size", "batched_by_transforms", "num_workers", "prefetch_size", "batch_transforms"):
            assert arg in params, (n, arg)
        if n.endswith("WithCache"):
            assert "num_cache_objects" in params and "replace_percent" in params


def test_pipeline_builds_from_config(dataset):
    from ai4med.config.builder import ComponentBuilder

    b = ComponentBuilder("config_train.json")
    p = b.build({"name": "SegmentationImagePipelineWithCache", "args": {
        "data_list_file_path": os.path.join(dataset, "datalist.json"), "data_file_base_dir": dataset,
        "data_list_key": "validation", "output_crop_size": [8, 8, 8], "output_batch_size": 1,
        "num_workers": 0, "num_cache_objects": 2, "replace_percent": 0.5}}, "pipelines")
    assert isinstance(p, SegmentationImagePipelineWithCache) and p.get_dataset_size() == 2


def test_batches_shapes_and_epoch_coverage(dataset):
    p = seg(dataset, [LoadNpy(), CropSubVolumeRandomWithinBounds(["image", "label"], [8, 8, 8])],
            output_image_dtype="float32", output_label_dtype="int64")
    assert len(p) == 4 and p.get_dataset_size() == 7
    batches = collect(p)
    assert [b["image"].shape[0] for b in batches] == [2, 2, 2, 1]
    assert batches[0]["image"].shape == (2, 1, 8, 8, 8) and batches[0]["image"].dtype == torch.float32
    assert batches[0]["label"].dtype == torch.int64
    # every item once per epoch: the image offset i * 10 identifies the item
    ids = sorted(int(round(float(x.mean()) / 10)) for b in batches for x in b["image"])
    assert ids == list(range(7))
    assert p.get_epoch() == 1
    assert sorted(batches[0]["cls"].tolist()) in ([0, 0], [0, 1], [1, 1])


def test_same_seed_same_batches_and_epochs_differ(dataset):
    chain = [LoadNpy(), CropSubVolumeRandomWithinBounds(["image", "label"], [8, 8, 8]), AddNoise()]
    a = collect(seg(dataset, chain), epochs=2)
    b = collect(seg(dataset, chain), epochs=2)
    for x, y in zip(a, b):
        torch.testing.assert_close(x["image"], y["image"])
    c = collect(seg(dataset, chain, seed=7))
    assert not torch.equal(a[0]["image"], c[0]["image"])
    assert not torch.equal(a[0]["image"], a[4]["image"])  # epoch 1 differs from epoch 0


@in_fresh_process  # see fresh_process.py
def test_zero_and_two_workers_identical(dataset):
    chain = [LoadNpy(), CropByPosNegRatio([8, 8, 8], ["image", "label"], "label", 1, 1, batch_size=2), AddNoise()]
    a = collect(seg(dataset, chain, num_workers=0, batched_by_transforms=True))
    b = collect(seg(dataset, chain, num_workers=2, prefetch_size=4, batched_by_transforms=True))
    assert len(a) == len(b) == 4
    for j, (x, y) in enumerate(zip(a, b)):
        # NaNs can only come from memory that was not written (nothing in the chain makes one): say which side
        where = f"batch {j}: NaNs {int(x['image'].isnan().sum())} (0 workers), {int(y['image'].isnan().sum())} (2 workers)"
        torch.testing.assert_close(x["image"], y["image"], msg=lambda m, where=where: f"{m}\n{where}")
        torch.testing.assert_close(x["label"], y["label"], msg=lambda m, where=where: f"{m}\n{where}")


def test_batch_by_transform_expands_and_batch_transforms(dataset):
    from ai4med.components.transforms.channels import MergeBatchDims

    chain = [LoadNpy(), CropByPosNegRatio([8, 8, 8], ["image", "label"], "label", pos=1, neg=0, batch_size=3)]
    p = seg(dataset, chain, batched_by_transforms=True, batch_transforms=[MergeBatchDims(["image", "label"]),
                                                                          RecordBatch()])
    batches = collect(p)
    assert [tuple(b["image"].shape) for b in batches] == [(6, 1, 8, 8, 8)] * 3 + [(3, 1, 8, 8, 8)]
    assert all((b["label"].flatten(1).amax(1) > 0).all() for b in batches)  # pos=1, neg=0: all positive
    assert batches[0]["batch_size_seen"].tolist() == [6] * 6


def test_output_properties_keep_per_crop_geometry(dataset):
    chain = [LoadNpy(), CropByPosNegRatio([8, 8, 8], ["image", "label"], "label", 1, 1, batch_size=2)]
    p = seg(dataset, chain, output_properties=True, shuffle=False, output_batch_size=1)
    b = next(iter(p))
    props = b["properties"]["image"]
    assert len(props) == 2
    for pr in props:
        start = [lo for lo, _ in pr["crop_box"]]
        np.testing.assert_allclose(pr["affine"][:3, 3], start)


def test_crop_size_and_channel_checks(dataset):
    p = seg(dataset, [LoadNpy()], output_crop_size=[8, 8, 8])
    with pytest.raises(ValueError, match="output_crop_size"):
        next(iter(p))
    p = seg(dataset, [LoadNpy()], output_crop_size=[-1, -1, -1], output_image_channels=2)
    with pytest.raises(ValueError, match="channels"):
        next(iter(p))
    p = seg(dataset, [LoadNpy()], output_crop_size=[-1, -1, -1], output_data_format="channels_last")
    assert tuple(next(iter(p))["image"].shape) == (2, 16, 16, 16, 1)


def test_sharding_disjoint_and_covering(dataset):
    for n, w in [(7, 3), (6, 2), (5, 5), (3, 4)]:
        shards = shard_indices(n, w)
        assert len({len(s) for s in shards}) == 1
        real = [set(int(i) for i in s if i < n) for s in shards]
        assert set().union(*real) == set(range(n))
        assert sum(len(r) for r in real) == n
    shard_items = []
    for rank in range(3):
        p = seg(dataset, [LoadNpy()], rank=rank, world_size=3, output_crop_size=[-1, -1, -1])
        assert len(p.get_shard()) == 3
        keys = p.epoch_keys()
        assert len({k.index for k in keys}) == 3
        shard_items.append({it["image"] for it in p.get_shard()})
    assert set().union(*shard_items) == {os.path.join(dataset, f"img{i}.npy") for i in range(7)}
    assert not (shard_items[0] - {os.path.join(dataset, "img0.npy")}) & shard_items[1]


def test_duplicate_count_and_no_shuffle(dataset):
    p = seg(dataset, [LoadNpy()], shuffle=False, duplicate_count=2, output_crop_size=[-1, -1, -1])
    keys = p.epoch_keys()
    assert [k.position for k in keys] == [i for i in range(7) for _ in range(2)]
    assert len({k.index for k in keys}) == 14


def test_epoch_reaches_ctrl_epoch_transform(dataset):
    t = CropSubVolumePosNegRatioCtrlEpoch("image", "label", [8, 8, 8], ratio_start=1.0, ratio_end=0.0,
                                          ratio_step=-1.0, num_epochs=1)
    p = seg(dataset, [LoadNpy(), t])
    p.set_epoch(3)  # ratio 0: negative crops only
    for b in p:
        assert b["image"].shape[1:] == (1, 8, 8, 8)
    assert p.get_epoch() == 4


# ------------------------------------------------------------------------------------------------ classification
def test_classification_labels_and_balanced_sampling(dataset):
    items = [{"image": os.path.join(dataset, f"img{i}.npy"), "label": [1.0, 0.0] if i < 6 else [0.0, 1.0]}
             for i in range(7)]
    p = ClassificationImagePipeline(data_list=items, transforms=[LoadNpy(["image"])], output_crop_size=[-1, -1, -1],
                                    output_batch_size=7, num_workers=0, seed=1, category_weights=[1, 6])
    counts = np.zeros(2)
    for _ in range(30):
        for b in p:
            assert b["label"].dtype == torch.float32 and b["label"].shape[1:] == (2,)
            counts += b["label"].sum(0).numpy()
    assert abs(counts[1] / counts.sum() - 0.5) < 0.08  # class 1 is 1 of 7 items but weighted 6:1
    q = ClassificationImagePipeline(data_list=items, transforms=[LoadNpy(["image"])], output_batch_size=4,
                                    num_workers=0, seed=1, items_per_category=[2, 2])
    keys = q.epoch_keys()
    assert len(keys) == 4 and sum(k.position == 6 for k in keys) == 2
    assert len({k.index for k in keys}) == 4


# ------------------------------------------------------------------------------------------------ smart cache
def test_smart_cache_unit_replacement():
    calls = []
    order = list(range(10))
    c = SmartCache(lambda i: calls.append(i) or i, order, num_cache_objects=4, replace_percent=0.5, background=True)
    assert c.replace_num == 2
    first = c.begin_epoch()
    assert sorted(first) == [0, 1, 2, 3]
    c.launch_replacement()
    second = c.begin_epoch()
    assert sorted(second) == [2, 3, 4, 5] and sorted(first) == [0, 1, 2, 3]  # views are not mutated
    c.launch_replacement()
    assert sorted(c.begin_epoch()) == [4, 5, 6, 7]
    assert calls[:8] == list(range(8))
    full = SmartCache(lambda i: i, order, num_cache_objects=0, replace_percent=0.5)
    assert full.size == 10 and full.replace_num == 0


def test_deterministic_prefix_length():
    assert deterministic_prefix_length([LoadNpy(), AddNoise(), LoadNpy()]) == 1
    assert deterministic_prefix_length([LoadNpy(), LoadNpy()]) == 2


def test_cache_pipeline_prefix_once_and_replacement(dataset):
    loader = LoadNpy()
    chain = [loader, CropSubVolumeRandomWithinBounds(["image", "label"], [8, 8, 8]), AddNoise()]
    p = SegmentationImagePipelineWithCache(
        data_list_file_path=os.path.join(dataset, "datalist.json"), data_file_base_dir=dataset, transforms=chain,
        output_crop_size=[8, 8, 8], output_batch_size=2, num_workers=0, seed=3, num_cache_objects=4,
        replace_percent=0.25,
    )
    assert p.prefix_length == 1
    r = math.ceil(4 * 0.25)
    cached_sets = []
    epoch_images = []
    for _epoch in range(3):
        batches = list(p)
        assert sum(b["image"].shape[0] for b in batches) == 4  # an epoch = a pass over the cache
        cached_sets.append(set(p.cached_indices()))
        epoch_images.append(torch.cat([b["image"] for b in batches]))
    p.shutdown()
    for a, b in zip(cached_sets, cached_sets[1:]):
        assert len(a - b) == r and len(b - a) == r
    # each loaded file once: the deterministic prefix is never re-run for a cached item
    img_calls = [c for c in loader.calls if "img" in os.path.basename(c)]
    assert len(img_calls) == len(set(img_calls)) == 4 + r * 3  # initial fill + 3 replacement rounds launched
    assert not torch.equal(epoch_images[0], epoch_images[1])


@in_fresh_process  # see fresh_process.py
def test_cache_pipeline_workers_match(dataset):
    chain = [LoadNpy(), CropByPosNegRatio([8, 8, 8], ["image", "label"], "label", 1, 1, batch_size=2), AddNoise()]
    runs = []
    for workers in (0, 2):
        p = SegmentationImagePipelineWithCache(
            data_list_file_path=os.path.join(dataset, "datalist.json"), transforms=chain,
            output_crop_size=[8, 8, 8], output_batch_size=2, num_workers=workers, seed=9, num_cache_objects=3,
            replace_percent=0.34, batched_by_transforms=True,
        )
        runs.append([b["image"] for _ in range(2) for b in p])
        p.shutdown()
    assert len(runs[0]) == len(runs[1]) == 4
    for x, y in zip(*runs):
        torch.testing.assert_close(x, y)


def test_classification_with_cache(dataset):
    items = [{"image": os.path.join(dataset, f"img{i}.npy"), "label": i % 2} for i in range(5)]
    p = ClassificationImagePipelineWithCache(data_list=items, transforms=[LoadNpy(["image"])], num_workers=0,
                                             output_batch_size=5, num_cache_objects=0, seed=0)
    b = next(iter(p))
    assert b["label"].dtype == torch.float32 and sorted(b["label"].tolist()) == [0, 0, 0, 1, 1]


# ------------------------------------------------------------------------------------------------ seed 004 AIAA chain
AIAA_PRE_TRANSFORMS = [  # seed 004's config_train_aiaa_Task09_Spleen pre_transforms (2019 spelling), sizes shrunk
    {"name": "transforms.LoadNifty", "fields": ["image", "label"]},
    {"name": "transforms.VolumeTo4dArray", "fields": ["image", "label"]},
    {"name": "transforms.ScaleIntensityRange", "field": "image", "a_min": -1024, "a_max": 1024, "b_min": -1.0,
     "b_max": 1.0, "clip": True},
    {"name": "transforms.CropForegroundObject", "size": [16, 16, 16], "image_field": "image", "label_field": "label",
     "pad": 2, "foreground_only": True},
    {"name": "transforms.ScaleIntensityOscillation", "field": "image", "magnitude": 0.2},
    {"name": "transforms.NPRandomRot90_XY", "applied_keys": ["image", "label"]},
    {"name": "transforms.AddExtremePointsChannel", "image_field": "image", "label_field": "label", "sigma": 3,
     "pert": 3},
]


@in_fresh_process  # see fresh_process.py
def test_seed004_aiaa_chain_through_cached_pipeline(tmp_path):
    import nibabel as nib

    from ai4med.config.builder import ComponentBuilder

    items = []
    rng = np.random.default_rng(0)
    for i in range(4):
        img = (rng.normal(size=(24, 24, 20)) * 300).astype(np.float32)
        lab = np.zeros((24, 24, 20), np.uint8)
        lab[6 + i : 14 + i, 8:16, 5:12] = 1
        aff = np.diag([1.5, 1.5, 2.5, 1.0])
        nib.save(nib.Nifti1Image(img, aff), str(tmp_path / f"img{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, aff), str(tmp_path / f"lab{i}.nii.gz"))
        items.append({"image": f"img{i}.nii.gz", "label": f"lab{i}.nii.gz"})
    (tmp_path / "dataset.json").write_text(json.dumps({"training": items}))

    b = ComponentBuilder("config_train_aiaa.json")
    chain = b.build_list(AIAA_PRE_TRANSFORMS, "transforms")
    runs = []
    for workers in (0, 2):
        p = b.build({"name": "SegmentationImagePipelineWithCache", "args": {
            "data_list_file_path": str(tmp_path / "dataset.json"), "data_file_base_dir": str(tmp_path),
            "data_list_key": "training", "output_crop_size": [16, 16, 16], "output_batch_size": 2,
            "output_image_channels": 2, "num_workers": workers, "num_cache_objects": 3, "replace_percent": 0.34,
            "seed": 5}}, "pipelines", f"/p{workers}")
        p.set_transforms(chain)
        assert p.prefix_length == 4  # load, 4D, window, foreground crop are cached
        batches = [batch for _ in range(2) for batch in p]
        p.shutdown()
        runs.append(batches)
        first = batches[0]
        assert tuple(first["image"].shape) == (2, 2, 16, 16, 16)
        assert set(torch.unique(first["label"]).tolist()) == {0, 1}
        heat = first["image"][:, 1]
        assert torch.allclose(heat.amax(dim=(1, 2, 3)), torch.ones(2)) and torch.allclose(
            heat.amin(dim=(1, 2, 3)), -torch.ones(2))
    for x, y in zip(*runs):
        torch.testing.assert_close(x["image"], y["image"])


def test_cache_is_not_mutated_by_random_suffix(dataset):
    from ai4med.components.transforms.catalog import REGISTRY as T

    chain = [
        LoadNpy(),
        T.get("ScaleIntensityOscillation")(fields="image", magnitude=0.5),
        T.get("AddGaussianNoise")(fields="image", probability=1.0),
        T.get("NPRandomFlip3D")(applied_keys=["image", "label"], probability=1.0),
        T.get("AdjustContrast")(fields="image", probability=1.0),
    ]
    p = SegmentationImagePipelineWithCache(
        data_list_file_path=os.path.join(dataset, "datalist.json"), transforms=chain, output_crop_size=[-1, -1, -1],
        output_batch_size=3, num_workers=0, seed=0, num_cache_objects=3, replace_percent=0.0,
    )
    list(p)
    list(p)
    for idx, ctx in p._cache_view.items():
        fresh = np.load(os.path.join(dataset, f"img{idx}.npy"))
        np.testing.assert_array_equal(ctx["image"].get_data()[0], fresh)


@pytest.mark.parametrize("cached", [False, True])
def test_duplicates_are_the_right_items_with_and_without_cache(tmp_path, cached):
    items = []
    for v in (1, 2, 3):
        np.save(tmp_path / f"c{v}.npy", np.full(SHAPE, v, np.float32))
        items.append({"image": str(tmp_path / f"c{v}.npy"), "label": str(tmp_path / f"c{v}.npy")})
    loader = LoadNpy()
    kwargs = {"num_cache_objects": 3, "replace_percent": 0.0} if cached else {}
    cls = SegmentationImagePipelineWithCache if cached else SegmentationImagePipeline
    p = cls(data_list=items, transforms=[loader, AddNoise()], output_crop_size=[-1, -1, -1], output_batch_size=6,
            num_workers=0, shuffle=False, duplicate_count=2, seed=0, **kwargs)
    (batch,) = list(p)
    labels = batch["label"].flatten(1)
    assert labels.min(1).values.tolist() == labels.max(1).values.tolist() == [1, 1, 2, 2, 3, 3]
    img = batch["image"]
    assert not torch.equal(img[0], img[1]) and not torch.equal(img[4], img[5])  # duplicates: distinct draws
    np.testing.assert_allclose(img.flatten(1).mean(1).numpy(), [1, 1, 2, 2, 3, 3], atol=0.05)
    if cached:  # each file loaded once (image + label), the duplicates start from the cached prefix
        assert len(loader.calls) == 6
        list(p)
        assert len(loader.calls) == 6


def test_cached_loader_chain_with_duplicates_and_batched_crops(dataset):
    chain = [LoadNpy(), CropByPosNegRatio([8, 8, 8], ["image", "label"], "label", 1, 1, batch_size=2), AddNoise()]
    p = SegmentationImagePipelineWithCache(
        data_list_file_path=os.path.join(dataset, "datalist.json"), transforms=chain, output_crop_size=[8, 8, 8],
        output_batch_size=2, num_workers=0, seed=1, num_cache_objects=3, replace_percent=0.34, shuffle=False,
        duplicate_count=2, batched_by_transforms=True,
    )
    for _ in range(2):
        batches = list(p)
        assert [tuple(b["image"].shape) for b in batches] == [(4, 1, 8, 8, 8)] * 3  # 3 items x 2 dups x 2 crops
        # image i is N(10 i, 1): every crop of a batch comes from the item the keys name
        means = torch.cat([b["image"].flatten(1).mean(1) for b in batches]).numpy()
        want = np.repeat([10 * i for i in p.cached_indices()], 4)
        np.testing.assert_allclose(means, want, atol=1.0)
    p.shutdown()


class _Fails:
    def transform(self, ctx):
        raise ValueError("shapes disagree")


def test_a_failing_transform_names_the_datalist_item_and_its_files(dataset):
    from ai4med.components.data.dataset import SampleError
    from ai4med.errors import user_message

    p = seg(dataset, [LoadNpy(), _Fails()])
    with pytest.raises(SampleError, match=r"datalist item \d+ \(image=.*img\d\.npy; label=.*lab\d\.npy\): "
                                          r"ValueError: shapes disagree") as e:
        next(iter(p))
    # torch re-raises a worker's error with the worker's traceback as the message: the CLI prints its last line
    from torch.utils.data._utils import ExceptionWrapper

    try:
        raise e.value
    except SampleError:
        import sys

        wrapped = ExceptionWrapper(sys.exc_info(), where="in DataLoader worker process 0")
    with pytest.raises(SampleError) as again:
        wrapped.reraise()
    assert "Original Traceback" in str(again.value)
    assert user_message(again.value) == str(e.value)
