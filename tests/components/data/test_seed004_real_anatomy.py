"""Seed 004's AIAA training chain (config_train_aiaa_Task09_Spleen pre_transforms, 2019 inline
args) through the cached pipeline on real anatomy: MNI152 cases, brain as the annotated object."""

import json

import numpy as np
import torch

from ai4med.config.builder import ComponentBuilder
from ai4med.datasets.mni152 import make_mni152_dataset

CHAIN = [
    {"name": "transforms.LoadNifty", "fields": ["image", "label"]},
    {"name": "transforms.VolumeTo4dArray", "fields": ["image", "label"]},
    {"name": "transforms.ScaleIntensityRange", "field": "image", "a_min": 0.0, "a_max": 1.0, "b_min": -1.0,
     "b_max": 1.0, "clip": True},
    {"name": "transforms.ScaleIntensityOscillation", "field": "image", "magnitude": 0.2},
    {"name": "transforms.CropForegroundObject", "size": [48, 48, 48], "image_field": "image",
     "label_field": "label", "pad": 4, "foreground_only": True},
    {"name": "transforms.NPRandomRot90_XY", "applied_keys": ["image", "label"]},
    {"name": "transforms.AddExtremePointsChannel", "image_field": "image", "label_field": "label", "sigma": 3,
     "pert": 3},
]


def test_seed004_chain_on_mni152(tmp_path):
    datalist = make_mni152_dataset(str(tmp_path / "mni"), num_cases=3, num_validation=1)
    builder = ComponentBuilder("config_train_aiaa.json")
    chain = builder.build_list(CHAIN, "transforms", "/train/pre_transforms")
    pipeline = builder.build({"name": "SegmentationImagePipelineWithCache", "args": {
        "data_list_file_path": datalist, "data_list_key": "training", "output_crop_size": [48, 48, 48],
        "output_batch_size": 2, "output_image_channels": 2, "num_workers": 0, "num_cache_objects": 2,
        "replace_percent": 0.5, "seed": 1}}, "pipelines", "/train/image_pipeline")
    pipeline.set_transforms(chain)
    assert pipeline.prefix_length == 3  # load, 4D, window cached; oscillation is random
    batch = next(iter(pipeline))
    pipeline.shutdown()
    image, label = batch["image"], batch["label"]
    assert tuple(image.shape) == (2, 2, 48, 48, 48) and tuple(label.shape) == (2, 1, 48, 48, 48)
    assert set(torch.unique(label).tolist()) == {0.0, 1.0}
    # the crop is the brain's bounding box plus a small pad: the brain fills far more of it than
    # of the whole volume (an ellipsoid fills at most pi/6 of its box)
    from ai4med.io.image_io import read_image

    whole = np.mean(read_image(pipeline.get_data_list()[0]["label"]).get_data() > 0)
    brain_fraction = label.float().mean().item()
    assert 1.3 * whole < brain_fraction < np.pi / 6 + 0.02
    # intensities were windowed to [-1, 1] before the +-20% oscillation; real anatomy is not constant
    t1 = image[:, 0]
    assert t1.min() >= -1.2 - 1e-5 and t1.max() <= 1.2 + 1e-5 and t1.std() > 0.2
    # the guidance channel is a heat-map in [-1, 1] peaking at extreme points on the brain's surface
    heat = image[:, 1]
    assert torch.allclose(heat.amax(dim=(1, 2, 3)), torch.ones(2))
    for b in range(2):
        peak = np.unravel_index(int(torch.argmax(heat[b])), heat[b].shape)
        lab = label[b, 0].numpy()
        lo, hi = [max(0, p - 4) for p in peak], [p + 5 for p in peak]
        assert lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].any(), "a peak lies on (or next to) the brain"
    json.dumps(pipeline.get_data_list())  # the items stay plain JSON
