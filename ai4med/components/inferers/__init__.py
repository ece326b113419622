"""ai4med.components.inferers: the seed-000 inference API on PyTorch.

Modules (import what you use; this package imports nothing heavy):
    inference_context  InferenceContext (model handle, names, extra inputs/outputs)
    predictor          Predictor (predict, predict_list)
    inferer            Inferer (infer, get_supported_input_names / output_names)
    simple_inferer     SimpleInferer
    scan_window        grid -> batches -> blend kernels (MONAI-equal fp32 results)
    sw_inferer         ScanWindowInferer
    sw_class_inferer   ScanClassWindowInferer (scan_interval rule, final activation)
    torch_predictor    TorchInferenceContext, TorchPredictor, TorchScript context/predictor
    onnx_predictor     OnnxInferenceContext, OnnxPredictor (onnxruntime)
    openvino_predictor OpenVinoInferenceContext, OpenVinoPredictor (an ONNX file on OpenVINO, CPU)
    triton_predictor   TritonInferenceContext, TritonPredictor (tritonclient http/grpc)
    saliency           TorchSaliencyPredictor / TorchSaliencyInferer (Grad-CAM)
    torch_inferers     TorchSimpleInferer, TorchScanWindowInferer, TorchScanClassWindowInferer, AutoPredictor
    precision          precision="auto" resolution, malloc tuning
    exported_module    ExportedModule: lazy conversion, re-conversion on weight change, torch fallback
    ort_runtime        OrtModule: opt-in fp32 CPU runtime through ONNX Runtime (runtime="onnxruntime")
    openvino_runtime   OpenVinoModule: fp32 CPU runtime through OpenVINO (runtime="openvino", or "auto"
                       with precision "auto" on CPUs without AMX)
    catalog            INFERERS / PREDICTORS registries (seed TF names as aliases)
"""
