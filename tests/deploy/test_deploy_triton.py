"""The deploy app against a real Triton Inference Server: the tritonserver bundled with
nvidia-pytriton serves the python-backend repository `ai4med export` wrote; the app runs its
scanning windows client-side over HTTP (address from the seed's NVIDIA_CLARA_TRTISURI) and
gRPC, and its outputs equal the local ONNX Runtime run's.

Skipped, with the reason, only where nvidia-pytriton is not installed or the server cannot
start (its Python-backend stub links the system libpython3.11: a virtual environment made
from Debian's /usr/bin/python3.11 works). Start-up is bounded (pytriton's 120 s, then 60 s
for the model); the server is stopped in the fixture's finaliser.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk
from deploy_fixtures import MODEL, make_app, make_exports, make_inputs

from ai4med.deploy.__main__ import main
from ai4med.deploy.app import EXIT_OK


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    pytest.importorskip("pytriton", reason="nvidia-pytriton is not installed (pip install --no-deps nvidia-pytriton)")
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed")
    from ai4med.deploy.triton_local import start_triton

    root = tmp_path_factory.mktemp("deploy_triton")
    exports = make_exports(str(root / "export"))
    app = make_app(str(root / "app"), exports)
    cases = make_inputs(str(root / "input"))
    try:
        server = start_triton(os.path.join(exports, "triton"), models=[MODEL])
        handle = server.__enter__()
    except RuntimeError as e:
        pytest.skip(str(e))
    try:
        yield {"root": root, "app": app, "cases": cases, "http": handle.http, "grpc": handle.grpc}
    finally:
        server.__exit__(None, None, None)


def _run(app: str, folder, *extra: str, inputs: str) -> str:
    out = str(folder / "output")
    rc = main(["--app", app, "--input", inputs, "--output", out, "--publish", str(folder / "publish"),
               "--logs", str(folder / "logs"), "--no_progress", *extra])
    assert rc == EXIT_OK
    return out


def test_triton_http_and_grpc_equal_local_onnx(served, tmp_path, monkeypatch, caplog) -> None:
    inputs = str(served["root"] / "input")
    # ONNX Runtime locally, as inside Triton: exact parity is the point (the default local runtime on a
    # CPU is OpenVINO; test_deploy_app checks it against ONNX Runtime)
    local = _run(served["app"], tmp_path / "local", "--model", os.path.join(served["app"], "models", "model.onnx"),
                 "--runtime", "onnxruntime", inputs=inputs)
    monkeypatch.setenv("NVIDIA_CLARA_TRTISURI", served["http"])  # the seed's variable, HTTP
    with caplog.at_level("INFO", logger="ai4med"):
        http = _run(served["app"], tmp_path / "http", inputs=inputs)
    assert f"Triton model 'seg' at {served['http']} (http, address from NVIDIA_CLARA_TRTISURI)" in caplog.text
    grpc = _run(served["app"], tmp_path / "grpc", "--triton_url", "grpc://" + served["grpc"], inputs=inputs)
    for case in served["cases"].values():
        expected = sitk.ReadImage(os.path.join(local, case["output"]))
        assert 0 < sitk.GetArrayFromImage(expected).mean() < 0.5
        for remote in (http, grpc):
            got = sitk.ReadImage(os.path.join(remote, case["output"]))
            np.testing.assert_array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(expected))
            assert got.GetOrigin() == expected.GetOrigin() and got.GetDirection() == expected.GetDirection()
    for folder in ("http", "grpc"):
        assert sorted(os.listdir(tmp_path / folder / "publish")) == sorted(
            c["output"][:-4] for c in served["cases"].values())
