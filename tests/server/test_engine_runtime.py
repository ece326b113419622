"""The model config's "runtime" reaches the torch contexts (checkpoint and TorchScript), and a runtime
the model cannot run on is a config error before anything is loaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ai4med.components.inferers.torch_predictor import TorchPredictor
from ai4med.server.engines.config import ModelConfigError, build_context

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def checkpoint(tmp_path) -> dict:
    from ai4med.components.models.unet import Unet

    torch.manual_seed(0)
    args = {"num_classes": 2, "num_in_channels": 1, "n_spatial_dim": 3, "channels": [4, 8], "strides": [2],
            "num_res_units": 0}
    model = Unet(**args)
    torch.save({"model": model.get_module().state_dict()}, tmp_path / "model.pt")
    torch.jit.save(torch.jit.trace(model.get_module().eval(), torch.zeros(1, 1, 16, 16, 16)), tmp_path / "model.ts")
    return {"model_path": "model.pt", "network": {"name": "Unet", "args": args}, "precision": "fp32"}


@pytest.mark.parametrize("fmt", ["checkpoint", "torchscript"])
def test_runtime_openvino_passes_through(checkpoint, tmp_path, fmt) -> None:
    pytest.importorskip("openvino")
    config = dict(checkpoint, model_path="model.pt" if fmt == "checkpoint" else "model.ts")
    ref = build_context(dict(config, runtime="torch"), str(tmp_path), "cpu")
    ctx = build_context(dict(config, runtime="openvino"), str(tmp_path), "cpu")
    assert ref.runtime == "torch" and ctx.runtime == "openvino"
    x = np.random.default_rng(0).standard_normal((1, 1, 16, 16, 16)).astype(np.float32)
    want = TorchPredictor().predict({"image": x}, "NCDHW", ref)["pred"]
    for _ in range(2):  # the first call converts
        got = TorchPredictor().predict({"image": x}, "NCDHW", ctx)["pred"]
    assert ctx.model.active and np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_runtime_that_cannot_run_is_a_config_error(checkpoint, tmp_path) -> None:
    with pytest.raises(ModelConfigError, match="runtime 'openvino' runs fp32 on CPU"):
        build_context(dict(checkpoint, runtime="openvino", precision="bf16"), str(tmp_path), "cpu")
    with pytest.raises(ModelConfigError, match="runtime must be one of"):
        build_context(dict(checkpoint, runtime="tensorrt"), str(tmp_path), "cpu")
