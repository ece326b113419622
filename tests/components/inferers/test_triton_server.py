"""A real Triton Inference Server (the tritonserver bundled with nvidia-pytriton) serving the
model repository `ai4med export` writes (Python backend running the ONNX export): the Triton
predictor over HTTP and gRPC gives the torch predictor's output.

Skipped, with the reason, where nvidia-pytriton is not installed or the server cannot start
(its Python-backend stub links the system libpython3.11: a virtual environment made from
Debian's /usr/bin/python3.11 works). The server starts once per module, on free loopback
ports, within a bounded time (pytriton's 120 s start-up timeout, then 60 s for the model), and is stopped in the fixture's finaliser.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import torch

from ai4med.components.inferers.torch_inferers import TorchScanWindowInferer
from ai4med.components.inferers.torch_predictor import TorchInferenceContext, TorchPredictor

START_TIMEOUT_S = 60
MODEL = "seg"


def make_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv3d(4, 2, 3, padding=1)).eval()


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("pytriton", reason="nvidia-pytriton is not installed (pip install nvidia-pytriton)")
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed")
    from pytriton.triton import Triton, TritonConfig

    from ai4med.apps.export import export_model

    net = make_net()
    repo = tmp_path_factory.mktemp("triton")
    export_model(net, str(repo / "exports"), [8, 8, 8], formats=("onnx",), triton_repo=str(repo / "models"),
                 triton_model_name=MODEL, triton_backend="python")
    http, grpc, metrics = _free_ports(3)
    config = TritonConfig(model_repository=str(repo / "models"), http_address="127.0.0.1", grpc_address="127.0.0.1",
                          http_port=http, grpc_port=grpc, metrics_port=metrics, exit_timeout_secs=2)
    triton = Triton(config=config)
    try:
        try:
            triton.run()  # returns once the server answers (pytriton's own start-up timeout: 120 s)
        except Exception as e:  # reported as the skip reason
            pytest.skip(f"Triton server did not start: {type(e).__name__}: {e}")
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while not _ready(client):
                if time.monotonic() > deadline:
                    pytest.skip(f"Triton model {MODEL!r} not ready within {START_TIMEOUT_S} s (the Python-backend "
                                "stub needs the system libpython3.11)")
                time.sleep(0.2)
        finally:
            client.close()
        yield {"http": f"127.0.0.1:{http}", "grpc": f"127.0.0.1:{grpc}", "net": net}
    finally:
        triton.stop()


def _ready(client) -> bool:
    try:
        return bool(client.is_model_ready(MODEL))
    except Exception:
        return False


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_predictor_equals_torch_predictor(server, protocol) -> None:
    from ai4med.components.inferers.triton_predictor import TritonInferenceContext, TritonPredictor

    x = np.random.default_rng(0).normal(size=(2, 1, 12, 8, 16)).astype(np.float32)
    torch_ctx = TorchInferenceContext(server["net"], precision="fp32", runtime="torch")
    expected = TorchPredictor().predict({"image": x}, "NCDHW", torch_ctx)["pred"]
    with TritonInferenceContext(MODEL, server[protocol], protocol, timeout=30) as ctx:
        assert ctx.input_names == ["NV_MODEL_INPUT"] and ctx.output_names == ["NV_MODEL_OUTPUT"]
        assert ctx.get_model_input_shapes() == {"NV_MODEL_INPUT": (None, 1, None, None, None)}
        got = TritonPredictor().predict({"image": x}, "NCDHW", ctx)["NV_MODEL_OUTPUT"]
        assert got.shape == expected.shape == (2, 2, 12, 8, 16)
        np.testing.assert_allclose(got, expected, atol=1e-4)
        # the scanning-window inferer runs client-side, batches of windows go to the server
        volume = np.random.default_rng(1).normal(size=(1, 20, 24, 16)).astype(np.float32)
        inferer = TorchScanWindowInferer([16, 16, 16], batch_size=3)
        remote = inferer.infer({"image": volume}, "CDHW", ctx)["NV_MODEL_OUTPUT"]
    local = inferer.infer({"image": volume}, "CDHW", torch_ctx)["pred"]
    np.testing.assert_allclose(remote, local, atol=1e-4)
    assert torch.is_tensor(torch.as_tensor(remote))
