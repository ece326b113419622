"""`ai4med infer`, `evaluate` and `export` on a tiny trained MMAR: geometry of the predictions,
Dice reports against a Dice computed here, exports that match the checkpoint (dynamic axes,
fp16), the Triton repository and model_config.json, and the seed 004 spellings."""

from __future__ import annotations

import argparse
import json
import logging
import os

import nibabel as nib
import numpy as np
import pytest
import torch

from ai4med.apps import evaluate, export, infer
from ai4med.apps._cli_args import add_evaluate_args, add_export_args, add_infer_args
from ai4med.datasets.synthetic import make_synthetic_dataset
from ai4med.errors import UserError

UNET = {"name": "Unet", "args": {"num_classes": 2, "channels": [4, 8], "strides": [2], "num_res_units": 1}}
# a BYOC model in the MMAR's custom/ folder (Clara's "path" components); its weights are set by
# hand below so that it segments the synthetic shapes: class 1 where the 3x3x3 mean exceeds 0.5
CUSTOM_NET = """
import torch
from ai4med.components.models.torch_model import TorchModel


class SmoothThreshold(TorchModel):
    def __init__(self, num_classes=2, hidden=2):
        net = torch.nn.Sequential(torch.nn.Conv3d(1, hidden, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.Conv3d(hidden, num_classes, 1))
        super().__init__(net, final_activation="softmax")
"""
NETWORK = {"name": "SmoothThreshold", "path": "smooth_threshold.SmoothThreshold", "args": {"num_classes": 2}}


def parse(adder, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    adder(p)
    return p.parse_args(argv)


def dice(pred: np.ndarray, label: np.ndarray) -> float:
    p, t = pred > 0, label > 0
    return 2.0 * np.logical_and(p, t).sum() / (p.sum() + t.sum())


def smooth_threshold_weights(k: float = 10.0) -> dict:
    """hidden = relu(+-k (mean3(x) - 0.5)); logits = (h1 - h0, h0 - h1): argmax = mean3(x) > 0.5."""
    mean = torch.full((1, 1, 3, 3, 3), 1.0 / 27)
    return {
        "0.weight": torch.cat([mean * k, -mean * k]), "0.bias": torch.tensor([-0.5 * k, 0.5 * k]),
        "2.weight": torch.tensor([[-1.0, 1.0], [1.0, -1.0]]).view(2, 2, 1, 1, 1), "2.bias": torch.zeros(2),
    }


@pytest.fixture(scope="module")
def mmar(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("mmar") / "spleen_demo"
    for d in ("config", "models", "data", "custom"):
        os.makedirs(root / d)
    (root / "custom" / "smooth_threshold.py").write_text(CUSTOM_NET)
    datalist = make_synthetic_dataset(str(root / "data"), num_cases=3, size=32, num_validation=2)
    (root / "config" / "environment.json").write_text(json.dumps(
        {"DATA_ROOT": str(root / "data"), "DATASET_JSON": datalist, "MMAR_CKPT_DIR": "{MMAR_ROOT}/models"}))
    load = {"name": "LoadNifti", "args": {"fields": ["image", "label"]}}
    channels = {"name": "ConvertToChannelsFirst", "args": {"fields": ["image", "label"]}}
    spacing = {"name": "ScaleByResolution#Spacing", "args": {"fields": ["image", "label"],
                                                              "target_resolution": [1.0, 1.0, 1.0]}}
    pipeline = {"name": "SegmentationImagePipeline", "args": {
        "data_list_file_path": "{DATASET_JSON}", "data_file_base_dir": "{DATA_ROOT}", "data_list_key": "validation",
        "output_crop_size": [-1, -1, -1], "output_batch_size": 1}}
    (root / "config" / "config_train.json").write_text(json.dumps({
        "epochs": 1,
        "train": {"model": NETWORK, "pre_transforms": [load, channels, spacing]},
        "validate": {
            "pre_transforms": [{"ref": "LoadNifti"}, {"ref": "ConvertToChannelsFirst"}, {"ref": "Spacing"}],
            "image_pipeline": pipeline,
            "inferer": {"name": "TFScanWindowInferer", "args": {"roi_size": [16, 16, 16], "batch_size": 4}},
            "metrics": [{"name": "ComputeAverageDice", "args": {
                "name": "mean_dice", "field": "model", "report_path": "{MMAR_EVAL_OUTPUT_PATH}", "is_key_metric": True}}],
        },
    }))
    torch.save({"model": smooth_threshold_weights(), "epoch": 1, "metrics": {}}, root / "models" / "model.pt")
    return str(root)


def _validation_items(mmar: str) -> list[dict]:
    from ai4med.io.datalist import load_datalist

    return load_datalist(os.path.join(mmar, "data", "datalist.json"), "validation")


def _prediction(folder: str, image: str) -> str:
    stem = os.path.basename(image).removesuffix(".nii.gz")
    return os.path.join(folder, stem, f"{stem}_model.nii.gz")


def test_infer_writes_one_label_map_per_case_with_the_input_geometry(mmar) -> None:
    assert infer.run(parse(add_infer_args, ["-m", mmar, "--no_progress"])) == 0
    for item in _validation_items(mmar):
        src, out = nib.load(item["image"]), nib.load(_prediction(os.path.join(mmar, "eval"), item["image"]))
        assert out.shape == src.shape == (32, 32, 32)
        np.testing.assert_allclose(out.affine, src.affine, atol=1e-6)
        pred = np.asarray(out.dataobj)
        assert set(np.unique(pred)) <= {0, 1} and 0.005 < pred.mean() < 0.6
        assert dice(pred, np.asarray(nib.load(item["label"]).dataobj)) > 0.7


def test_infer_takes_a_folder_or_an_image_file_instead_of_a_datalist(mmar, tmp_path, caplog) -> None:
    """`-d FOLDER` / `-d image.nii.gz`: the same masks as through the datalist; evaluate refuses (no labels)."""
    import shutil

    from ai4med.errors import UserError

    items = _validation_items(mmar)
    folder = tmp_path / "images"
    folder.mkdir()
    for item in items:
        shutil.copy(item["image"], folder)
    (folder / "notes.txt").write_text("not an image")
    ref = tmp_path / "ref"
    assert infer.run(parse(add_infer_args, ["-m", mmar, "--no_progress", "-o", str(ref)])) == 0
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        assert infer.run(parse(add_infer_args, ["-m", mmar, "--no_progress", "-o", str(out), "-d", str(folder)])) == 0
    assert "left out" in caplog.text and "notes.txt" in caplog.text
    one = tmp_path / "one"
    assert infer.run(parse(add_infer_args, ["-m", mmar, "--no_progress", "-o", str(one), "-d",
                                            str(folder / os.path.basename(items[0]["image"]))])) == 0
    for item in items:
        expected = nib.load(_prediction(str(ref), item["image"]))
        got = nib.load(_prediction(str(out), item["image"]))
        assert np.array_equal(np.asarray(got.dataobj), np.asarray(expected.dataobj))
        np.testing.assert_allclose(got.affine, expected.affine, atol=1e-6)
    assert np.array_equal(np.asarray(nib.load(_prediction(str(one), items[0]["image"])).dataobj),
                          np.asarray(nib.load(_prediction(str(ref), items[0]["image"])).dataobj))
    assert sorted(os.listdir(one)) == [os.path.basename(items[0]["image"]).removesuffix(".nii.gz")]
    with pytest.raises(UserError, match="need labels"):
        evaluate.run(parse(add_evaluate_args, ["-m", mmar, "--no_progress", "-d", str(folder)]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no volume"):
        infer.run(parse(add_infer_args, ["-m", mmar, "--no_progress", "-d", str(tmp_path / "empty")]))


def test_evaluate_reports_per_case_dice(mmar, tmp_path, capsys) -> None:
    out = str(tmp_path / "eval")
    assert evaluate.run(parse(add_evaluate_args, ["-m", mmar, "-o", out, "--save_predictions", "--no_progress"])) == 0
    lines = open(os.path.join(out, "mean_dice_raw_results.txt")).read().splitlines()
    items = _validation_items(mmar)
    assert len(lines) == len(items)
    scores = []
    for item, line in zip(items, lines):
        name, value = line.split("\t")
        pred = np.asarray(nib.load(_prediction(out, item["image"])).dataobj)
        expected = dice(pred, np.asarray(nib.load(item["label"]).dataobj))
        assert name == os.path.basename(item["image"]) and float(value) == pytest.approx(expected, abs=1e-6)
        scores.append(expected)
    name, summary = open(os.path.join(out, "mean_dice_summary_results.txt")).read().split()
    assert name == "mean_dice" and float(summary) == pytest.approx(np.mean(scores), abs=1e-6)
    assert f"mean_dice: {np.mean(scores):.4f}" in capsys.readouterr().out


def test_export_matches_the_checkpoint_with_dynamic_axes(mmar, capsys) -> None:
    import onnx
    import onnxruntime as ort

    from ai4med.config.workflow_config import load_config
    from ai4med.inference.models import checkpoint_module

    assert export.run(parse(add_export_args, ["-m", mmar])) == 0
    printed = capsys.readouterr().out
    assert "parity on a random input (1, 1, 16, 16, 16)" in printed and printed.count("  ok  ") == 2
    models = os.path.join(mmar, "models")
    cfg = load_config(os.path.join(mmar, "config", "config_train.json"))
    module = checkpoint_module(os.path.join(models, "model.pt"), config=cfg)
    x = torch.rand(2, 1, 16, 24, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = module(x).numpy()
    proto = onnx.load(os.path.join(models, "model.onnx"))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    sess = ort.InferenceSession(os.path.join(models, "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["NV_MODEL_INPUT"]
    assert [o.name for o in sess.get_outputs()] == ["NV_MODEL_OUTPUT"]
    np.testing.assert_allclose(sess.run(None, {"NV_MODEL_INPUT": x.numpy()})[0], ref, atol=1e-4)
    with torch.no_grad():
        np.testing.assert_allclose(torch.jit.load(os.path.join(models, "model.ts"))(x).numpy(), ref, atol=1e-4)
    repo = os.path.join(models, "triton", "spleen_demo")
    pbtxt = open(os.path.join(repo, "config.pbtxt")).read()
    assert 'platform: "onnxruntime_onnx"' in pbtxt and "dims: [ -1, 1, -1, -1, -1 ]" in pbtxt
    assert "dims: [ -1, 2, -1, -1, -1 ]" in pbtxt and os.path.isfile(os.path.join(repo, "1", "model.onnx"))
    assert json.load(open(os.path.join(models, "model_config.json"))) == {
        "model_name": "spleen_demo", "input_node_names": ["NV_MODEL_INPUT"], "output_node_names": ["NV_MODEL_OUTPUT"],
        "data_format": "channels_first", "output_channel_dict": {"NV_MODEL_OUTPUT": 2},
        "network_input_size": [16, 16, 16]}


def test_export_of_a_unet_keeps_dynamic_axes(tmp_path) -> None:
    from ai4med.components.models.unet import Unet
    from ai4med.inference.models import prediction_module

    torch.manual_seed(0)
    module = prediction_module(Unet(**UNET["args"]))
    res = export.export_model(module, str(tmp_path), [16, 16, 16], triton_repo=None)
    assert set(res.parity) == {"ts", "onnx"} and max(res.parity.values()) < 1e-4
    x = torch.rand(3, 1, 24, 16, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = module(x).numpy()
        np.testing.assert_allclose(torch.jit.load(res.files["ts"])(x).numpy(), ref, atol=1e-4)
    import onnxruntime as ort

    sess = ort.InferenceSession(res.files["onnx"], providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"NV_MODEL_INPUT": x.numpy()})[0], ref, atol=1e-4)


def test_infer_with_the_exported_onnx_agrees_with_the_checkpoint(mmar, tmp_path) -> None:
    models = os.path.join(mmar, "models")
    if not os.path.exists(os.path.join(models, "model.onnx")):
        export.run(parse(add_export_args, ["-m", mmar, "--no_triton"]))
    reference = tmp_path / "ckpt"
    onnx_out = tmp_path / "onnx"
    assert infer.run(parse(add_infer_args, ["-m", mmar, "-o", str(reference), "--no_progress"])) == 0
    assert infer.run(parse(add_infer_args, ["-m", mmar, "-o", str(onnx_out), "--no_progress",
                                            "--model_file_path", os.path.join(models, "model.onnx")])) == 0
    amp_out = tmp_path / "amp"  # --amp: bf16 autocast on AMX CPUs / fp16 on CUDA, else ONNX Runtime fp32
    assert infer.run(parse(add_infer_args, ["-m", mmar, "-o", str(amp_out), "--no_progress", "--amp"])) == 0
    for item in _validation_items(mmar):
        a = np.asarray(nib.load(_prediction(str(reference), item["image"])).dataobj)
        for other in (onnx_out, amp_out):
            b = np.asarray(nib.load(_prediction(str(other), item["image"])).dataobj)
            assert (a == b).mean() > 0.99


def test_infer_with_runtime_openvino_writes_the_torch_masks(mmar, tmp_path, caplog) -> None:
    pytest.importorskip("openvino")
    reference, ov_out = tmp_path / "torch", tmp_path / "openvino"
    assert infer.run(parse(add_infer_args, ["-m", mmar, "-o", str(reference), "--no_progress",
                                            "--runtime", "torch"])) == 0
    with caplog.at_level(logging.INFO, logger="ai4med.apps.evaluate"):
        assert infer.run(parse(add_infer_args, ["-m", mmar, "-o", str(ov_out), "--no_progress",
                                                "--runtime", "openvino"])) == 0
    assert "runtime openvino" in caplog.text  # the model really ran there
    for item in _validation_items(mmar):
        a = np.asarray(nib.load(_prediction(str(reference), item["image"])).dataobj)
        b = np.asarray(nib.load(_prediction(str(ov_out), item["image"])).dataobj)
        assert a.any() and np.array_equal(a, b)
    assert "path unavailable" not in caplog.text  # converted, not the torch fallback
    assert parse(add_evaluate_args, ["-m", mmar, "--runtime", "openvino"]).runtime == "openvino"
    with pytest.raises(UserError, match="--runtime openvino applies to checkpoint, TorchScript and ONNX"):
        evaluate.apply_runtime(object(), "openvino")


def test_infer_onnx_file_with_runtime_openvino_writes_the_onnxruntime_masks(mmar, tmp_path, caplog) -> None:
    pytest.importorskip("openvino")
    models = os.path.join(mmar, "models")
    if not os.path.exists(os.path.join(models, "model.onnx")):
        export.run(parse(add_export_args, ["-m", mmar, "--no_triton"]))
    onnx_file = os.path.join(models, "model.onnx")
    outs = {}
    caplog.set_level(logging.INFO)
    for runtime in ("onnxruntime", "openvino", "auto"):
        outs[runtime] = tmp_path / runtime
        assert infer.run(parse(add_infer_args, ["-m", mmar, "-o", str(outs[runtime]), "--no_progress",
                                                "--model_file_path", onnx_file, "--runtime", runtime])) == 0
    assert "OpenVinoInferenceContext" in caplog.text and "OnnxInferenceContext" in caplog.text
    for item in _validation_items(mmar):
        a = np.asarray(nib.load(_prediction(str(outs["onnxruntime"]), item["image"])).dataobj)
        for other in ("openvino", "auto"):
            b = np.asarray(nib.load(_prediction(str(outs[other]), item["image"])).dataobj)
            assert a.any() and np.array_equal(a, b)
    with pytest.raises(UserError, match="runtime 'torch' does not run an ONNX file"):
        infer.run(parse(add_infer_args, ["-m", mmar, "-o", str(tmp_path / "t"), "--no_progress",
                                         "--model_file_path", onnx_file, "--runtime", "torch"]))


def test_export_fp16_python_backend(mmar, tmp_path, capsys) -> None:
    out = tmp_path / "fp16"
    argv = ["-c", os.path.join(mmar, "config", "config_train.json"), "--model_file_path",
            os.path.join(mmar, "models", "model.pt"), "--trt_precision_mode", "FP16", "--formats", "onnx",
            "--triton_backend", "python", "--triton_model_name", "seg", "-o", str(out), "--network_input_size", "16",
            "16", "32", "--trt_min_seg_size", "50"]
    assert export.run(parse(add_export_args, argv)) == 0
    assert "(fp16)" in capsys.readouterr().out
    repo = out / "triton" / "seg"
    assert 'backend: "python"' in (repo / "config.pbtxt").read_text()
    assert (repo / "1" / "model.py").is_file() and (repo / "1" / "model.onnx").is_file()
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"NV_MODEL_INPUT": np.random.default_rng(0).random((1, 1, 16, 16, 32), np.float32)})[0]
    assert y.dtype == np.float32 and y.shape == (1, 2, 16, 16, 32)
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-2)  # softmax survives half precision


def test_runtime_reaches_a_checkpoint_loader_of_an_inference_config(mmar, tmp_path, caplog) -> None:
    """`--runtime` with an inference config whose model_loader is a CheckpointLoader (the network
    from the config's `model`)."""
    train_cfg = json.loads(open(os.path.join(mmar, "config", "config_train.json")).read())
    config = tmp_path / "config_infer.json"
    config.write_text(json.dumps({
        "model": train_cfg["train"]["model"],
        "model_loader": {"name": "CheckpointLoader",
                         "args": {"checkpoint_file": os.path.join(mmar, "models", "model.pt")}},
        "inferer": {"name": "TFScanWindowInferer", "args": {"roi_size": [16, 16, 16]}},
        "pre_transforms": [{"name": "LoadNifti", "args": {"fields": "image"}},
                           {"name": "ConvertToChannelsFirst", "args": {"fields": "image"}}],
        "post_transforms": [{"name": "ArgmaxAcrossChannels", "args": {"fields": "model"}}],
    }))
    outs = {}
    for runtime in ("torch", "openvino"):
        outs[runtime] = tmp_path / runtime
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ai4med.apps.evaluate"):
            assert infer.run(parse(add_infer_args, ["-m", mmar, "-c", str(config), "-o", str(outs[runtime]),
                                                    "--no_progress", "--runtime", runtime])) == 0
        assert f"runtime {runtime}" in caplog.text
    for item in _validation_items(mmar):
        a = np.asarray(nib.load(_prediction(str(outs["torch"]), item["image"])).dataobj)
        b = np.asarray(nib.load(_prediction(str(outs["openvino"]), item["image"])).dataobj)
        assert a.any() and np.array_equal(a, b)


def test_seed_004_form_with_an_inference_config(mmar, tmp_path) -> None:
    """tlt-infer flags, a 2019-style config (inline args, writers.WriteNiftyResults), a TorchScript
    model loader and a test list of bare image paths (no labels)."""
    models = os.path.join(mmar, "models")
    if not os.path.exists(os.path.join(models, "model.ts")):
        export.run(parse(add_export_args, ["-m", mmar, "--no_triton"]))
    data = os.path.join(mmar, "data")
    images = sorted(i["image"] for i in _validation_items(mmar))
    datalist = tmp_path / "test_list.json"
    datalist.write_text(json.dumps({"test": [os.path.relpath(p, data) for p in images]}))
    config = tmp_path / "config_infer.json"
    config.write_text(json.dumps({
        "batch_size": 1,
        "model_loader": {"name": "FrozenGraphModelLoader", "args": {"model_file_path": os.path.join(models, "model.ts")}},
        "inferer": {"name": "TFScanWindowInferer", "args": {"roi_size": [16, 16, 16]}},
        "pre_transforms": [{"name": "transforms.LoadNifty", "fields": ["image", "label"]},
                           {"name": "transforms.ConvertToChannelsFirst", "fields": ["image", "label"]}],
        "post_transforms": [{"name": "transforms.ArgmaxAcrossChannels", "fields": "model"}],
        "writers": [{"name": "writers.WriteNiftyResults", "applied_key": "model", "dtype": "uint8"}],
    }))
    out = tmp_path / "out"
    argv = ["--config", str(config), "--data_file", str(datalist), "--data_list_key", "test", "--file_root", data,
            "--output_path", str(out), "--model_format", "trtmodel", "--setup", "standard", "--no_progress"]
    assert infer.run(parse(add_infer_args, argv)) == 0
    for image in images:
        written = nib.load(_prediction(str(out), image))
        assert written.shape[:3] == (32, 32, 32) and np.allclose(written.affine, nib.load(image).affine)


def test_missing_checkpoint_is_a_clear_error(mmar, tmp_path) -> None:
    with pytest.raises(UserError, match="no checkpoint final_model.pt in"):
        infer.run(parse(add_infer_args, ["-m", mmar, "--model_name", "final_model", "-o", str(tmp_path)]))


def test_an_unreachable_triton_server_is_one_error_line(mmar, tmp_path, capsys) -> None:
    """Not a 60-line traceback: the URL, the protocol and why, and exit 1."""
    import socket

    from ai4med.cli import main

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = main(["infer", "-m", mmar, "--no_progress", "-o", str(tmp_path / "o"), "--triton_url", f"127.0.0.1:{port}",
               "--triton_model_name", "m"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert f"error: could not reach the server: Triton server 127.0.0.1:{port} (http" in err
