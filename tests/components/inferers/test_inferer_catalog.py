"""Every registered inferer and predictor resolves and builds from a JSON component node."""

import pytest

from ai4med.components.inferers.catalog import INFERERS, PREDICTORS
from ai4med.components.inferers.predictor import Predictor
from ai4med.config.builder import ComponentBuilder

ARGS = {
    "SimpleInferer": None,
    "ScanWindowInferer": None,
    "ScanClassWindowInferer": None,
    "TorchScanWindowInferer": {"roi_size": [16, 16, 16], "batch_size": 2, "overlap": 0.5, "blend_mode": "gaussian"},
    "TorchScanClassWindowInferer": {"roi_size": [16, 16, 16], "batch_size": 2, "scan_interval": [0.5, 8, None],
                                    "final_activation": "softmax"},
    "TorchSaliencyInferer": {"conv_layer_name": "features"},
    "TFScanWindowInferer": {"roi_size": [96, 96, 96], "batch_size": 4},
    "TFScanClassWindowInferer": {"roi_size": [96, 96, 96], "batch_size": 1, "scan_interval": [0.5, 0.5, 0.5]},
}


@pytest.mark.parametrize("name", INFERERS.names())
def test_inferers_build_from_json(name):
    cls = INFERERS.get(name)
    if name in ARGS and ARGS[name] is None:  # generic inferers take a predictor object, not JSON
        assert callable(cls)
        return
    obj = ComponentBuilder().build({"name": name, "args": ARGS.get(name, {})}, "inferers")
    assert isinstance(obj, cls) and isinstance(obj.predictor, Predictor)


@pytest.mark.parametrize("name", PREDICTORS.names())
def test_predictors_resolve(name):
    cls = PREDICTORS.get(name)
    assert issubclass(cls, Predictor)


def test_seed_names_are_aliases():
    for seed, ours in [("TFSimpleInferer", "TorchSimpleInferer"), ("TFScanWindowInferer", "TorchScanWindowInferer"),
                       ("TFScanClassWindowInferer", "TorchScanClassWindowInferer"),
                       ("TFSaliencyInferer", "TorchSaliencyInferer")]:
        assert INFERERS.get(seed) is INFERERS.get(ours)
    assert PREDICTORS.get("TFPredictor") is PREDICTORS.get("AutoPredictor")
    assert PREDICTORS.get("TFSaliencyPredictor") is PREDICTORS.get("TorchSaliencyPredictor")
