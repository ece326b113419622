"""From training to serving (docs/annotation.md): `ai4med train` with a seed-004-style annotation config
(CropForegroundObject + AddExtremePointsChannel with `pert`, a 2-channel Unet) on synthetic data, then the
produced checkpoint served by the real annotation server on loopback and called as the AIAA Python client
calls it. The config files and the curl points are read from docs/annotation.md, so the page is tested too."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from aiaa_test_client import AIAAClient

from ai4med.cli import build_parser, main
from ai4med.datasets.synthetic import make_synthetic_dataset

DOC = Path(__file__).resolve().parents[2] / "docs" / "annotation.md"
MODEL = "annotation_synthetic"


def doc_files() -> dict[str, str]:
    """The JSON files the page shows, each after a `<!-- file: NAME -->` marker."""
    text = DOC.read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- file: (\S+) -->\s*```json\n(.*?)```", text, re.S))


def doc_points() -> list[list[int]]:
    m = re.search(r"-F 'params=(\{\"points\": .*?\})'", DOC.read_text(encoding="utf-8"))
    assert m, "docs/annotation.md has no dextr3d curl example"
    return json.loads(m.group(1))["points"]


def extreme_points(mask: np.ndarray) -> list[list[int]]:
    """Min/max along x, y, z of the foreground (the first voxel found), as [x, y, z] indices."""
    idx = np.argwhere(mask)
    return [idx[f(idx[:, d])].tolist() for d in range(3) for f in (np.argmin, np.argmax)]


def live_server_class():
    """LiveServer from this folder's conftest.py (imported by path: pytest's `conftest` module name is shared)."""
    spec = importlib.util.spec_from_file_location("_server_conftest", Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.LiveServer


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The page's working folder after steps 1-4: data, the three config files, the trained `out/`."""
    work = tmp_path_factory.mktemp("annotation")
    files = doc_files()
    assert sorted(files) == ["annotation_synthetic.json", "config_train_annotation.json", "engine_pool.json"]
    for name, text in files.items():
        (work / name).write_text(text, encoding="utf-8")
    # = `ai4med make-dataset synthetic -o data --cases 4 --size 24`
    make_synthetic_dataset(str(work / "data"), num_cases=4, size=24)
    rc = main(["train", "segmentation", "-e", str(work / "config_train_annotation.json"),
               "-d", str(work / "data" / "datalist.json"), "-r", str(work / "out")])
    assert rc == 0
    return work


@pytest.fixture(scope="module")
def server(work, tmp_path_factory):
    from ai4med.server.app import create_app
    from ai4med.server.settings import ServerSettings

    args = build_parser().parse_args(["serve", "--config", str(work / "engine_pool.json"), "--port", "0",
                                      "--workspace", str(tmp_path_factory.mktemp("ws"))])
    srv = live_server_class()(create_app(ServerSettings.from_args(args))).start()
    yield srv
    srv.stop()


def test_training_wrote_a_two_channel_checkpoint(work):
    ckpt = torch.load(work / "out" / "model.pt", map_location="cpu", weights_only=True)  # no pickled objects
    convs = [v for k, v in ckpt["model"].items() if k.endswith("weight") and v.ndim == 5]
    assert convs[0].shape[1] == 2, "image + extreme-points channel"
    hist = json.loads((work / "out" / "training_history.json").read_text())
    assert len(hist) == json.loads((work / "config_train_annotation.json").read_text())["epochs"]
    assert all(0.0 <= h["val_mean_dice"] <= 1.0 for h in hist)


def test_models_lists_the_trained_model(server):
    client = AIAAClient(server.url)
    r = client.model_list()
    assert r.status == 200
    models = r.json()
    assert [m["name"] for m in models] == [MODEL]
    m = models[0]
    assert m["type"] == "annotation" and m["labels"] == ["object_1"]
    assert m["internal name"] == "Dextr3dCroppedEngine" and m["roi"] == [24, 24, 24]
    assert client.model(MODEL).json()["name"] == MODEL
    assert [x["name"] for x in client.model_list("object_1").json()] == [MODEL]
    assert client.model_list("liver").json() == []


def _client_pre_process(image: str, points: list[list[int]], pad: float, roi: list[int], out: str):
    """AIAAUtils.image_pre_process of the Python client (aiaa_api.md §3.4): crop, resample, scale points."""
    import SimpleITK as sitk

    img = sitk.ReadImage(image)
    spacing, size = img.GetSpacing(), img.GetSize()
    vx = [int(pad / s) if s > 0 else int(pad) for s in spacing]
    lo = [min(max(p[i] - vx[i], 0) for p in points) for i in range(3)]
    hi = [max(min(p[i] + vx[i], size[i] - 1) for p in points) for i in range(3)]
    cropped = img[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    csize = cropped.GetSize()
    out_spacing = [spacing[i] * csize[i] / roi[i] for i in range(3)]
    roi_img = sitk.Resample(cropped, roi, sitk.Transform(), sitk.sitkLinear, cropped.GetOrigin(), out_spacing,
                            cropped.GetDirection(), 0, cropped.GetPixelID())
    sitk.WriteImage(roi_img, out, True)
    local = [[int((p[i] - lo[i]) * roi[i] / csize[i]) for i in range(3)] for p in points]
    return local, list(zip(lo, hi)), csize, size


def _client_post_process(mask_file: str, crop, csize, size) -> np.ndarray:
    """image_post_processing: nearest-neighbour back to the crop size, pasted into the full grid."""
    import SimpleITK as sitk

    m = sitk.ReadImage(mask_file)
    sp = [m.GetSpacing()[i] * m.GetSize()[i] / csize[i] for i in range(3)]
    back = sitk.Resample(m, csize, sitk.Transform(), sitk.sitkNearestNeighbor, m.GetOrigin(), sp, m.GetDirection())
    full = np.zeros(size[::-1], np.uint8)
    (x1, x2), (y1, y2), (z1, z2) = crop
    full[z1:z2, y1:y2, x1:x2] = sitk.GetArrayFromImage(back)
    return full.transpose(2, 1, 0)  # [x, y, z] like nibabel's


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def test_dextr3d_as_the_python_client_sends_it(server, work, tmp_path):
    client = AIAAClient(server.url)
    info = client.model(MODEL).json()
    datalist = json.loads((work / "data" / "datalist.json").read_text())
    case = datalist["validation"][0]
    image, truth = str(work / "data" / case["image"]), np.asarray(nib.load(work / "data" / case["label"]).dataobj)
    points = extreme_points(truth > 0)
    assert points == doc_points(), "the curl example in docs/annotation.md uses the validation case's points"
    roi_file = str(tmp_path / "roi.nii.gz")
    local, crop, csize, size = _client_pre_process(image, points, info["padding"], info["roi"], roi_file)
    r = client.dextr3d(MODEL, local, roi_file)
    assert r.status == 200, r.body
    assert "multipart" in r.headers["content-type"] and r.headers["content-length"]
    assert isinstance(r.params, dict) and "crop" in r.params
    assert list(r.files) == ["result.nii.gz"]
    out = tmp_path / "result.nii.gz"
    out.write_bytes(r.files["result.nii.gz"])
    mask, roi = nib.load(str(out)), nib.load(roi_file)
    assert mask.shape == roi.shape == tuple(info["roi"])
    np.testing.assert_allclose(mask.affine, roi.affine, atol=1e-4)
    values = np.asarray(mask.dataobj)
    assert set(np.unique(values).tolist()) <= {0, 1} and values.any()
    full = _client_post_process(str(out), crop, csize, size)
    assert _dice(full > 0, truth > 0) > 0.5, "the trained model segments the clicked object"
    # the same points as a JSON string (clients before 2021)
    r = client.dextr3d(MODEL, json.dumps(local), roi_file)
    assert r.status == 200 and list(r.files) == ["result.nii.gz"]


def test_dextr3d_full_image_and_session(server, work, tmp_path):
    """MITK's form (whole image, full-image points) and the session form: the mask is on the input's grid."""
    client = AIAAClient(server.url)
    case = json.loads((work / "data" / "datalist.json").read_text())["validation"][0]
    image = str(work / "data" / case["image"])
    src = nib.load(image)
    points = doc_points()
    r = client.dextr3d(MODEL, points, image)
    assert r.status == 200, r.body
    out = tmp_path / "full.nii.gz"
    out.write_bytes(r.files["result.nii.gz"])
    mask = nib.load(str(out))
    assert mask.shape == src.shape
    np.testing.assert_allclose(mask.affine, src.affine, atol=1e-5)
    full = np.asarray(mask.dataobj)
    assert set(np.unique(full).tolist()) <= {0, 1}
    truth = np.asarray(nib.load(work / "data" / case["label"]).dataobj) > 0
    assert _dice(full > 0, truth) > 0.5
    sid = client.create_session(image).json()["session_id"]
    r = client.dextr3d(MODEL, points, None, session_id=sid)
    assert r.status == 200, r.body
    out2 = tmp_path / "session.nii.gz"
    out2.write_bytes(r.files["result.nii.gz"])
    np.testing.assert_array_equal(np.asarray(nib.load(str(out2)).dataobj), full)
    assert client.close_session(sid).status == 200
    assert os.path.isfile(work / "out" / "final_model.pt")


def _seed_eval_config(work: Path) -> dict:
    """Seed 004 §9.1's AIAA evaluation config (config_eval_aiaa_*.json) for the page's model: CropForegroundObject
    with size = the image size (24^3), so the prediction has the label file's shape while on another grid."""
    network = json.loads((work / "annotation_synthetic.json").read_text())["network"]
    return {
        "model_loader": {"name": "CheckpointLoader", "args": {"checkpoint_file": str(work / "out" / "model.pt"),
                                                              "model": network}},
        "pre_transforms": [
            {"name": "transforms.LoadNifty", "fields": ["image", "label"]},
            {"name": "transforms.VolumeTo4dArray", "fields": ["image", "label"]},
            {"name": "transforms.CropForegroundObject", "size": [24, 24, 24], "image_field": "image",
             "label_field": "label", "pad": 3, "foreground_only": True},
            {"name": "transforms.ScaleIntensityRange", "field": "image", "a_min": -1.0, "a_max": 2.0,
             "b_min": -1.0, "b_max": 1.0, "clip": True},
            {"name": "transforms.AddExtremePointsChannel", "image_field": "image", "label_field": "label",
             "sigma": 3, "pert": 0},
        ],
        "post_transforms": [{"name": "transforms.SplitAcrossChannels", "applied_key": "model", "squeeze": True,
                             "channel_names": ["background", "prediction"]}],
        "writers": [{"applied_key": "prediction", "name": "writers.WriteNiftyResults", "dtype": "float32"},
                    {"applied_key": "label", "name": "writers.WriteNiftyResults", "dtype": "uint8"}],
        "val_metrics": [{"name": "ComputeAverageDice", "args": {"name": "mean_dice", "field": "model",
                                                                 "label_field": "label"}}],
        "inferer": {"name": "TFSimpleInferer"},
    }


def _on_grid(path: str, like: str) -> np.ndarray:
    """The file's voxels (> 0.5) resampled onto the grid of `like` through both affines (nearest)."""
    from ai4med.components.transforms.spatial import resample_to_grid

    src, dst = nib.load(path), nib.load(like)
    return resample_to_grid((np.asarray(src.dataobj) > 0.5).astype(np.uint8), src.affine, dst.affine, dst.shape, 0,
                            "zeros")


def test_evaluate_dice_is_the_dice_of_the_files_it_writes(work, tmp_path, capsys):
    """Regression (issue 12): the prediction stays in the crop's grid but has the label file's shape; evaluate
    used the label file as read because the shapes matched (mean Dice 0.33 where the files score 0.90)."""
    cfg = tmp_path / "config_eval.json"
    cfg.write_text(json.dumps(_seed_eval_config(work)))
    datalist = str(work / "data" / "datalist.json")
    case = json.loads(Path(datalist).read_text())["validation"][0]
    label_file = str(work / "data" / case["label"])
    stem = os.path.basename(case["image"]).removesuffix(".nii.gz")
    dice = {}
    for space in ("label", "model"):
        out = tmp_path / space
        assert main(["evaluate", "-c", str(cfg), "-d", datalist, "-o", str(out), "--save_predictions",
                     "--metric_space", space, "--no_progress"]) == 0
        dice[space] = float((out / "mean_dice_raw_results.txt").read_text().split()[1])
        pred_file, label_written = out / stem / f"{stem}_prediction.nii.gz", out / stem / f"{stem}_label.nii.gz"
        assert nib.load(str(pred_file)).shape == nib.load(label_file).shape == (24, 24, 24)
        if space == "model":  # the written prediction and label share the crop's grid
            written = np.asarray(nib.load(str(pred_file)).dataobj) > 0.5
            assert dice[space] == pytest.approx(_dice(written, np.asarray(nib.load(str(label_written)).dataobj) > 0),
                                                abs=1e-6)
        else:  # the written prediction brought onto the label file's grid through the affines (NIfTI keeps the
            # crop's affine in float32, so a voxel centre exactly between two may round the other way: 2e-3)
            truth = np.asarray(nib.load(label_file).dataobj) > 0
            assert dice[space] == pytest.approx(_dice(_on_grid(str(pred_file), label_file) > 0, truth), abs=2e-3)
    crop_space_pred = np.asarray(nib.load(str(tmp_path / "label" / stem / f"{stem}_prediction.nii.gz")).dataobj) > 0.5
    by_shape = _dice(crop_space_pred, np.asarray(nib.load(label_file).dataobj) > 0)
    assert dice["label"] > 0.6 and abs(dice["label"] - dice["model"]) < 0.1
    assert by_shape < dice["label"] - 0.2, "the shape-coincidence Dice must differ, else the test proves nothing"
