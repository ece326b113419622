"""The deploy app (seed 003 base inference application) with a local model: a folder of NIfTI,
MetaImage and DICOM inputs -> MetaImage segmentations with the inputs' names and geometry,
the publish folder, the log; bad inputs, empty folders, unreachable Triton; settings; the
Dockerfiles' and README's commands."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk
from deploy_fixtures import dice, make_app, make_exports, make_inputs, read_itk

from ai4med.deploy.__main__ import main
from ai4med.deploy.app import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, check_model_config, discover_inputs
from ai4med.deploy.settings import DeploySettings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("deploy")
    exports = make_exports(str(root / "export"))
    app = make_app(str(root / "app"), exports)
    cases = make_inputs(str(root / "input"))
    return {"root": root, "exports": exports, "app": app, "cases": cases}


def _run(app: str, tmp, *extra: str, inputs: str) -> tuple[int, dict]:
    folders = {k: str(tmp / k) for k in ("output", "publish", "logs")}
    rc = main(["--app", app, "--input", inputs, "--output", folders["output"], "--publish", folders["publish"],
               "--logs", folders["logs"], "--no_progress", *extra])
    return rc, folders


def _labels(path: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(path)).transpose(2, 1, 0)  # x, y, z like the masks


def _same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-5)


def _no_temp_files(*folders: str) -> None:
    for folder in folders:
        for _, dirs, files in os.walk(folder):
            assert not [n for n in dirs + files if n.startswith(".tmp-")]


@pytest.mark.parametrize("model", ["model.onnx", "model.ts"])
def test_nifti_metaimage_and_dicom_inputs(env, tmp_path, model, capsys) -> None:
    rc, out = _run(env["app"], tmp_path, "--model", os.path.join(env["app"], "models", model),
                   inputs=str(env["root"] / "input"))
    assert rc == EXIT_OK
    assert sorted(os.listdir(out["output"])) == sorted(
        [c["output"] for c in env["cases"].values()] + [c["output"][:-4] + ".raw" for c in env["cases"].values()])
    for name, case in env["cases"].items():
        seg_path = os.path.join(out["output"], case["output"])
        seg, src = sitk.ReadImage(seg_path), read_itk(case["path"])
        _same_geometry(seg, src)
        assert seg.GetPixelID() == sitk.sitkUInt8
        labels = _labels(seg_path)
        assert set(np.unique(labels)) == {0, 1}
        assert dice(labels, case["mask"]) > 0.9, name
        assert re.search(r"ElementDataFile\s*=\s*" + re.escape(case["output"][:-4] + ".raw"), open(seg_path).read())
        # publish: one folder per input (several inputs), the input as read, the segmentation, the render config
        pub = os.path.join(out["publish"], case["output"][:-4])
        assert sorted(os.listdir(pub)) == ["config_render.json", "image.mhd", "image.raw", "image.seg.mhd",
                                           "image.seg.raw"]
        image = sitk.ReadImage(os.path.join(pub, "image.mhd"))
        _same_geometry(image, src)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(src))
        np.testing.assert_array_equal(_labels(os.path.join(pub, "image.seg.mhd")), labels)
        assert json.load(open(os.path.join(pub, "config_render.json")))["volumes"][1]["file"] == "image.seg.mhd"
    _no_temp_files(out["output"], out["publish"])
    log = open(os.path.join(out["logs"], "deploy.log")).read()
    for name in env["cases"]:
        assert re.search(re.escape(name) + r": pre [\d.]+s infer [\d.]+s post [\d.]+s write [\d.]+s", log)
    assert "deploy summary: 3 of 3 input(s) segmented" in log
    assert "deploy summary: 3 of 3" in capsys.readouterr().out


def test_default_openvino_runtime_matches_onnxruntime(env, tmp_path, monkeypatch, caplog) -> None:
    pytest.importorskip("openvino")
    model = os.path.join(env["app"], "models", "model.onnx")
    inputs = str(env["root"] / "input")
    with caplog.at_level("INFO", logger="ai4med"):
        rc, default = _run(env["app"], tmp_path / "auto", "--model", model, "--device", "cpu", inputs=inputs)
    assert rc == EXIT_OK
    assert "runtime OpenVINO (--runtime auto)" in caplog.text  # the log says which runtime runs the model
    monkeypatch.setenv("AI4MED_DEPLOY_RUNTIME", "onnxruntime")
    caplog.clear()
    with caplog.at_level("INFO", logger="ai4med"):
        rc, ort = _run(env["app"], tmp_path / "ort", "--model", model, "--device", "cpu", inputs=inputs)
    assert rc == EXIT_OK
    assert "runtime ONNX Runtime (--runtime onnxruntime from AI4MED_DEPLOY_RUNTIME)" in caplog.text
    for name, case in env["cases"].items():
        a = _labels(os.path.join(default["output"], case["output"]))
        b = _labels(os.path.join(ort["output"], case["output"]))
        for label in np.unique(np.concatenate([np.unique(a), np.unique(b)])):
            if label:
                assert dice(a == label, b == label) >= 0.99, (name, label)


def test_single_input_publishes_flat_and_pydicom_ct5n(env, tmp_path) -> None:
    import pydicom

    ct5n = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "dicomdirtests", "98892001", "CT5N")
    inputs = tmp_path / "in"
    shutil.copytree(ct5n, inputs / "CT5N")
    rc, out = _run(env["app"], tmp_path, "--model", os.path.join(env["app"], "models", "model.onnx"),
                   inputs=str(inputs))
    assert rc == EXIT_OK
    assert sorted(os.listdir(out["output"])) == ["CT5N.mhd", "CT5N.raw"]
    _same_geometry(sitk.ReadImage(os.path.join(out["output"], "CT5N.mhd")), read_itk(ct5n))
    assert sorted(os.listdir(out["publish"])) == ["config_render.json", "image.mhd", "image.raw", "image.seg.mhd",
                                                  "image.seg.raw"]
    # the input folder itself may be the DICOM series
    assert discover_inputs(ct5n) == ([ct5n], [])


def test_bad_input_is_reported_and_skipped(env, tmp_path, capsys) -> None:
    inputs = tmp_path / "in"
    os.makedirs(inputs)
    good = env["cases"]["patient_b.mhd"]["path"]
    shutil.copy(good, inputs / "good.mhd")
    shutil.copy(good[:-4] + ".raw", inputs / "patient_b.raw")  # the header names patient_b.raw
    (inputs / "broken.nii.gz").write_bytes(b"this is not a NIfTI file")
    (inputs / "notes.txt").write_text("ignored")
    rc, out = _run(env["app"], tmp_path, "--model", os.path.join(env["app"], "models", "model.onnx"),
                   inputs=str(inputs))
    assert rc == EXIT_PARTIAL
    assert sorted(os.listdir(out["output"])) == ["good.mhd", "good.raw"]
    captured = capsys.readouterr()
    assert "1 failed: broken.nii.gz" in captured.out
    log = open(os.path.join(out["logs"], "deploy.log")).read()
    assert "broken.nii.gz failed" in log and "cannot read nifti image" in log
    assert "ignored " + str(inputs / "notes.txt") in log
    _no_temp_files(out["output"], out["publish"])


def test_non_dicom_dcm_folder_and_4d_input_fail_clearly(env, tmp_path, capsys) -> None:
    """issue 17 item 6: a folder of non-DICOM *.dcm files counted as nothing (rc 0, only a WARNING), and a
    4-D input failed with a raw TorchScript traceback."""
    import nibabel as nib

    inputs = tmp_path / "in"
    os.makedirs(inputs / "scans")
    for i in range(3):
        (inputs / "scans" / f"IM{i}.dcm").write_bytes(b"not DICOM" * 20)
    good = env["cases"]["patient_b.mhd"]["path"]
    shutil.copy(good, inputs / "good.mhd")
    shutil.copy(good[:-4] + ".raw", inputs / "patient_b.raw")
    nib.save(nib.Nifti1Image(np.zeros((12, 12, 12, 2), np.float32), np.eye(4)), str(inputs / "four_d.nii.gz"))
    rc, out = _run(env["app"], tmp_path, "--model", os.path.join(env["app"], "models", "model.ts"),
                   inputs=str(inputs))
    assert rc == EXIT_PARTIAL
    summary = capsys.readouterr().out
    assert "1 of 3 input(s) segmented" in summary and "2 failed" in summary
    assert "scans: " in summary and "none of its 3 DICOM-named file(s)" in summary
    assert "four_d.nii.gz: ValueError: a 4-D image with 2 channels" in summary and "Traceback" not in summary
    assert sorted(os.listdir(out["output"])) == ["good.mhd", "good.raw"]


def test_only_an_unreadable_file_fails_clearly(env, tmp_path, capsys) -> None:
    inputs = tmp_path / "in"
    os.makedirs(inputs)
    (inputs / "scan.mha").write_bytes(b"\x00garbage")
    rc, out = _run(env["app"], tmp_path, "--model", os.path.join(env["app"], "models", "model.onnx"),
                   inputs=str(inputs))
    assert rc == EXIT_FATAL
    err = capsys.readouterr().err
    assert err.startswith("error: no input could be segmented: scan.mha:") and "scan.mha" in err
    assert os.listdir(out["output"]) == []


def test_empty_or_missing_input_folder(env, tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    os.makedirs(empty)
    t = time.monotonic()
    rc, _ = _run(env["app"], tmp_path, "--model", os.path.join(env["app"], "models", "model.onnx"),
                 inputs=str(empty))
    assert rc == EXIT_FATAL and time.monotonic() - t < 10
    assert f"error: no input in {empty}: expected NIfTI" in capsys.readouterr().err
    rc, _ = _run(env["app"], tmp_path, inputs=str(tmp_path / "missing"))
    assert rc == EXIT_FATAL
    assert f"input folder not found: {tmp_path / 'missing'}" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_unreachable_triton_fails_fast(env, tmp_path, capsys, monkeypatch, protocol) -> None:
    from ai4med.deploy.triton_local import free_ports

    port = free_ports(1)[0]  # nothing listens there
    monkeypatch.setenv("NVIDIA_CLARA_TRTISURI", f"127.0.0.1:{port}")
    t = time.monotonic()
    rc, out = _run(env["app"], tmp_path, "--triton_protocol", protocol, "--triton_timeout", "2",
                   inputs=str(env["root"] / "input"))
    assert rc == EXIT_FATAL and time.monotonic() - t < 8
    err = capsys.readouterr().err
    assert f"error: Triton unreachable (127.0.0.1:{port} from NVIDIA_CLARA_TRTISURI, {protocol}" in err
    assert os.listdir(out["output"]) == []


def test_settings_flags_then_environment_then_defaults() -> None:
    env = {"AI4MED_DEPLOY_INPUT": "/data/in", "NVIDIA_CLARA_TRTISURI": "trtis:8000", "AI4MED_TRITON_TIMEOUT": "3"}
    s = DeploySettings.resolve({"output": "out"}, env)
    assert (s.input, s.output, s.publish, s.logs) == ("/data/in", "out", "/publish", "/logs")
    assert (s.triton_url, s.triton_url_source, s.triton_protocol, s.triton_timeout) == (
        "trtis:8000", "NVIDIA_CLARA_TRTISURI", None, 3.0)
    s = DeploySettings.resolve({"triton_url": "grpc://h:8001"}, {**env, "AI4MED_TRITON_URL": "x:1"})
    assert (s.triton_url, s.triton_protocol, s.triton_url_source) == ("h:8001", "grpc", "flag --triton_url")
    assert DeploySettings.resolve({}, {"AI4MED_TRITON_URL": "a:1", "NVIDIA_CLARA_TRTISURI": "b:2"}).triton_url == "a:1"
    with pytest.raises(ValueError, match="http or grpc"):
        DeploySettings.resolve({"triton_protocol": "udp"}, {})
    assert (DeploySettings.resolve({}, {}).runtime, DeploySettings.resolve({}, env).sources["runtime"]) == (
        "auto", "default")
    s = DeploySettings.resolve({"runtime": "openvino"}, {"AI4MED_DEPLOY_RUNTIME": "onnxruntime"})
    assert (s.runtime, s.sources["runtime"]) == ("openvino", "flag --runtime")
    assert DeploySettings.resolve({}, {"AI4MED_DEPLOY_RUNTIME": "ONNXRuntime"}).runtime == "onnxruntime"
    with pytest.raises(ValueError, match="runtime must be one of"):
        DeploySettings.resolve({}, {"AI4MED_DEPLOY_RUNTIME": "torch"})


def test_model_config_is_checked(env, tmp_path, capsys) -> None:
    doc = json.load(open(os.path.join(env["app"], "config", "model_config.json")))
    assert doc == {"model_name": "seg", "input_node_names": ["NV_MODEL_INPUT"],
                   "output_node_names": ["NV_MODEL_OUTPUT"], "data_format": "channels_first",
                   "output_channel_dict": {"NV_MODEL_OUTPUT": 2}, "network_input_size": [16, 16, 16]}
    from ai4med.deploy.app import DeployError

    with pytest.raises(DeployError, match="missing key.*network_input_size"):
        check_model_config({k: v for k, v in doc.items() if k != "network_input_size"}, "m.json")
    with pytest.raises(DeployError, match="only channels_first"):
        check_model_config({**doc, "data_format": "channels_last"}, "m.json")
    app = tmp_path / "app"
    shutil.copytree(env["app"], app)
    (app / "config" / "model_config.json").write_text(json.dumps({**doc, "output_node_names": ["PROB"]}))
    rc, _ = _run(str(app), tmp_path, "--model", str(app / "models" / "model.onnx"), inputs=str(env["root"] / "input"))
    assert rc == EXIT_FATAL
    assert "output 'PROB' is not an output of the model (it has ['NV_MODEL_OUTPUT'])" in capsys.readouterr().err


def test_check_mode_and_init_app(env, tmp_path, capsys) -> None:
    assert main(["--app", env["app"], "--check"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "TRTISScanWindowInferer roi [16, 16, 16]" in out and "Triton model 'seg' at localhost:8000" in out
    assert main(["--app", env["app"], "--check", "--model", os.path.join(env["app"], "models")]) == EXIT_OK
    assert "local TorchScript model" in capsys.readouterr().out
    assert main(["--init_app", str(tmp_path / "base")]) == EXIT_OK
    assert sorted(os.listdir(tmp_path / "base" / "config")) == ["config_inference.json", "config_render.json",
                                                                 "model_config.json"]
    assert main(["--app", str(tmp_path / "base"), "--check"]) == EXIT_OK  # the base app loads as shipped
    assert "Triton model 'segmentation_liver_v1'" in capsys.readouterr().out


# --- the Dockerfiles' and README's commands ------------------------------------------------------
def _instructions(path: str) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", open(path, encoding="utf-8").read())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _in(root, path: str) -> str:
    """A container path (/app/...) inside the test's stand-in for the container's root."""
    return str(root) + path if path.startswith("/") else path


def _deploy_commands(instructions: list[tuple[str, str]]) -> list[list[str]]:
    return [shlex.split(rest) for op, rest in instructions if op == "RUN" and rest.startswith("python -m ai4med.deploy")]


def test_dockerfiles_commands_build_and_run_the_app(env, tmp_path) -> None:
    """Runs the ai4med commands of deploy/Dockerfile.base and deploy/Dockerfile.model, with the
    container's / under tmp_path, then the image's ENTRYPOINT with the volumes as variables."""
    root = tmp_path / "container"
    base = _instructions(os.path.join(REPO, "deploy", "Dockerfile.base"))
    model = _instructions(os.path.join(REPO, "deploy", "Dockerfile.model"))
    run_env = dict(os.environ)
    for op, rest in base:
        if op == "ENV":
            for item in shlex.split(rest):
                k, _, v = item.partition("=")
                run_env[k] = _in(root, v) if k == "AI4MED_DEPLOY_APP" else v
    for cmd in _deploy_commands(base):
        assert cmd[:3] == ["python", "-m", "ai4med.deploy"]
        subprocess.run([sys.executable, *cmd[1:3], *[_in(root, a) for a in cmd[3:]]], check=True, timeout=60)
    assert os.path.isfile(root / "app" / "config" / "config_inference.json")
    # Dockerfile.model: COPY ./${MY_APP_NAME}/ /app/ , then its check
    copies = [rest.split() for op, rest in model if op == "COPY"]
    assert copies == [["./${MY_APP_NAME}/", "/app/"]]
    shutil.copytree(env["app"], root / "app", dirs_exist_ok=True)
    for cmd in _deploy_commands(model):
        done = subprocess.run([sys.executable, *cmd[1:3], *[_in(root, a) for a in cmd[3:]]], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    entry = json.loads(next(rest for op, rest in base if op == "ENTRYPOINT"))
    assert entry == ["python", "-m", "ai4med.deploy"]
    # docker run -v in:/input -v out:/output ... -e AI4MED_DEPLOY_MODEL=/app/models/model.onnx IMAGE
    for name in ("output", "publish", "logs"):
        run_env[f"AI4MED_DEPLOY_{name.upper()}"] = str(tmp_path / name)
    run_env["AI4MED_DEPLOY_INPUT"] = str(env["root"] / "input")
    run_env["AI4MED_DEPLOY_MODEL"] = _in(root, "/app/models/model.onnx")
    done = subprocess.run([sys.executable, *entry[1:], "--no_progress"], env=run_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(n for n in os.listdir(tmp_path / "output") if n.endswith(".mhd")) == sorted(
        c["output"] for c in env["cases"].values())


def test_readme_commands_use_existing_flags() -> None:
    import argparse

    from ai4med.deploy.cli_args import add_deploy_args

    parser = argparse.ArgumentParser()
    add_deploy_args(parser)
    text = open(os.path.join(REPO, "deploy", "README.md"), encoding="utf-8").read()
    text = re.sub(r"\\\n\s*", " ", text)
    commands = [line.split("python -m ai4med.deploy", 1)[1] for line in text.splitlines()
                if "python -m ai4med.deploy " in line and "triton_local" not in line]
    assert len(commands) >= 4
    for cmd in commands:
        parser.parse_args(shlex.split(cmd.split("#")[0]))


def test_inputs_are_read_while_the_model_opens(env, tmp_path, monkeypatch) -> None:
    """deploy starts reading the first input before it opens the model (seconds of imports and loading), and a
    model that fails to open still stops the run cleanly (exit code, no staging or reading left behind)."""
    import threading

    from ai4med.deploy import app as deploy_app
    from ai4med.inference.pipeline import CasePipeline

    read = threading.Event()
    prepare, make_context = CasePipeline.prepare, deploy_app.make_context

    def prepare_and_tell(self, item, rng=None):
        out = prepare(self, item, rng)
        read.set()
        return out

    def slow_model(app, settings):
        assert read.wait(30), "no input was read while the model opened"
        return make_context(app, settings)

    monkeypatch.setattr(CasePipeline, "prepare", prepare_and_tell)
    monkeypatch.setattr(deploy_app, "make_context", slow_model)
    inputs = str(env["root"] / "input")
    model = ("--model", os.path.join(env["app"], "models", "model.onnx"), "--device", "cpu")
    rc, folders = _run(env["app"], tmp_path / "ok", *model, inputs=inputs)
    written = sorted(f for f in os.listdir(folders["output"]) if f.endswith(".mhd"))
    assert rc == EXIT_OK and written == sorted(c["output"] for c in env["cases"].values())

    def broken_model(app, settings):
        assert read.wait(30)
        raise deploy_app.DeployError("the model cannot be opened")

    read.clear()
    monkeypatch.setattr(deploy_app, "make_context", broken_model)
    rc, folders = _run(env["app"], tmp_path / "broken", *model, inputs=inputs)
    assert rc == EXIT_FATAL and not os.listdir(folders["output"])
    assert not [t for t in threading.enumerate() if t.name.startswith("ai4med-load")]
