"""The inferer and predictor registries (lazy "module:attr" entries; seed TF names as aliases)."""

from ai4med.config.registry import Registry

_P = "ai4med.components.inferers"

INFERERS = Registry(
    "inferers",
    {
        "SimpleInferer": f"{_P}.simple_inferer:SimpleInferer",
        "ScanWindowInferer": f"{_P}.sw_inferer:ScanWindowInferer",
        "ScanClassWindowInferer": f"{_P}.sw_class_inferer:ScanClassWindowInferer",
        "TorchSimpleInferer": f"{_P}.torch_inferers:TorchSimpleInferer",
        "TorchScanWindowInferer": f"{_P}.torch_inferers:TorchScanWindowInferer",
        "TorchScanClassWindowInferer": f"{_P}.torch_inferers:TorchScanClassWindowInferer",
        "TorchSaliencyInferer": f"{_P}.saliency:TorchSaliencyInferer",
        # seed (TensorFlow) names
        "TFSimpleInferer": f"{_P}.torch_inferers:TorchSimpleInferer",
        "TFScanWindowInferer": f"{_P}.torch_inferers:TorchScanWindowInferer",
        "TFScanClassWindowInferer": f"{_P}.torch_inferers:TorchScanClassWindowInferer",
        "TFSaliencyInferer": f"{_P}.saliency:TorchSaliencyInferer",
        # seed 003 (deploy app) name
        "TRTISScanWindowInferer": f"{_P}.trtis_inferer:TRTISScanWindowInferer",
    },
)

PREDICTORS = Registry(
    "predictors",
    {
        "AutoPredictor": f"{_P}.torch_inferers:AutoPredictor",
        "TorchPredictor": f"{_P}.torch_predictor:TorchPredictor",
        "TorchScriptPredictor": f"{_P}.torch_predictor:TorchScriptPredictor",
        "OnnxPredictor": f"{_P}.onnx_predictor:OnnxPredictor",
        "OpenVinoPredictor": f"{_P}.openvino_predictor:OpenVinoPredictor",
        "TritonPredictor": f"{_P}.triton_predictor:TritonPredictor",
        "TorchSaliencyPredictor": f"{_P}.saliency:TorchSaliencyPredictor",
        "EnsemblePredictor": f"{_P}.ensemble:EnsemblePredictor",
        # seed (TensorFlow) names
        "TFPredictor": f"{_P}.torch_inferers:AutoPredictor",
        "TFSaliencyPredictor": f"{_P}.saliency:TorchSaliencyPredictor",
    },
)
