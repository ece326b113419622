"""Grad-CAM saliency on a named layer: `TorchSaliencyPredictor` and `TorchSaliencyInferer` (seed
000's TFSaliencyPredictor / TFSaliencyInferer on PyTorch).

The predictor returns "saliency" (the class activation map of `conv_layer_name`, upsampled
to the input's spatial shape, scaled to [0, 1] per sample) and "processed_input" (the
input as the network saw it, resized back to the input's shape).

Example:
    >>> import numpy as np, torch
    >>> from ai4med.components.inferers.torch_predictor import TorchInferenceContext
    >>> net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 2, 1))
    >>> ctx = TorchInferenceContext(net, precision="fp32")
    >>> out = TorchSaliencyInferer("1").infer({"image": np.random.rand(1, 8, 8, 8).astype("f4")}, "CDHW", ctx)
    >>> out["saliency"].shape, out["processed_input"].shape
    ((1, 8, 8, 8), (1, 8, 8, 8))
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.layout import as_shape_format, from_nc, to_nc
from ai4med.components.inferers.predictor import Predictor
from ai4med.components.inferers.simple_inferer import SimpleInferer
from ai4med.components.inferers.torch_predictor import TorchInferenceContext, select_inputs

_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


def resize_tensor(x: torch.Tensor, size: Sequence[int], order: int = 1) -> torch.Tensor:
    """Resize the spatial axes of `x` (N C *spatial): order 0 nearest, 1 (bi/tri)linear."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    mode = "nearest" if order == 0 else _LINEAR[len(size)]
    kwargs = {} if order == 0 else {"align_corners": False}
    return F.interpolate(x, size=tuple(size), mode=mode, **kwargs)


def resize_volume(nda: np.ndarray, output_shape: Sequence[int], order: int = 1, **_: Any) -> np.ndarray:
    """Resize a 1-3D array to `output_shape` (seed helper; extra skimage-style options are ignored)."""
    x = torch.as_tensor(np.asarray(nda, dtype=np.float32))[None, None]
    return resize_tensor(x, output_shape, order)[0, 0].numpy()


def find_layer(module: torch.nn.Module, name: str | None) -> torch.nn.Module:
    """The sub-module called `name` (None: the last convolution), or a KeyError with the closest names."""
    layers = dict(module.named_modules())
    if name is None:
        convs = [m for m in layers.values() if isinstance(m, torch.nn.modules.conv._ConvNd)]
        if not convs:
            raise KeyError("the model has no convolution; name a layer with conv_layer_name")
        return convs[-1]
    if name not in layers:
        close = difflib.get_close_matches(name, list(layers), n=5, cutoff=0.3)
        raise KeyError(f"no layer {name!r} in the model; closest: {close or sorted(layers)[:10]}")
    return layers[name]


def grad_cam(
    model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, target_class: int | None = None
) -> torch.Tensor:
    """Grad-CAM map (N, 1, *layer spatial) of `layer` for the predicted (or given) class."""
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.enable_grad():
            logits = model(x.requires_grad_(True))
            logits = logits if isinstance(logits, torch.Tensor) else next(iter(logits.values() if isinstance(logits, dict) else logits))
            scores = logits.flatten(2).mean(2) if logits.ndim > 2 else logits
            target = scores.argmax(1) if target_class is None else torch.full_like(scores[:, 0], target_class).long()
            score = scores.gather(1, target[:, None]).sum()
            (grads,) = torch.autograd.grad(score, captured[0])
    finally:
        hook.remove()
    acts = captured[0].detach()
    weights = grads.flatten(2).mean(2)[(..., *([None] * (acts.ndim - 2)))]
    return F.relu((weights * acts).sum(1, keepdim=True))


def normalize(cam: torch.Tensor) -> torch.Tensor:
    """Scale each sample to [0, 1] (an all-zero map stays zero)."""
    flat = cam.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    shape = (-1, *([1] * (cam.ndim - 1)))
    return (cam - lo.view(shape)) / (hi - lo).clamp(min=1e-12).view(shape)


class TorchSaliencyPredictor(Predictor):
    """Grad-CAM saliency and processed input for the layer `conv_layer_name` of a torch model.

    Args:
        conv_layer_name: the sub-module name (as in `model.named_modules()`); None: the last convolution.
        target_class: class to explain (None: the predicted class, by spatial mean of logits).
        network_input_size: resize the input to this spatial size before the model (None: as is).
    """

    context_type = TorchInferenceContext

    def __init__(
        self,
        conv_layer_name: str | None = None,
        target_class: int | None = None,
        network_input_size: Sequence[int] | None = None,
    ) -> None:
        self.conv_layer_name = conv_layer_name
        self.target_class = target_class
        self.network_input_size = None if network_input_size is None else tuple(network_input_size)

    def predict(
        self,
        model_input_values: dict[str, Any],
        input_shape_format: ShapeFormat | str,
        inference_ctx: TorchInferenceContext,
    ) -> dict[str, Any]:
        self.check_context(inference_ctx)
        sf = as_shape_format(input_shape_format)
        (value,) = select_inputs(model_input_values, inference_ctx.input_names[:1])
        x = to_nc(torch.as_tensor(np.asarray(value, dtype=np.float32)), sf).to(inference_ctx.device)
        size = tuple(x.shape[2:])
        processed = resize_tensor(x, self.network_input_size or size)
        model = inference_ctx.module
        if isinstance(model, torch.jit.ScriptModule):
            raise TypeError("Grad-CAM needs an eager torch module (TorchScript modules take no forward hooks)")
        cam = grad_cam(model, find_layer(model, self.conv_layer_name), processed.clone(), self.target_class)
        out = {
            "saliency": normalize(resize_tensor(cam, size)),
            "processed_input": resize_tensor(processed, size),
        }
        return {k: from_nc(v.detach().cpu(), sf).numpy() for k, v in out.items()}


class TorchSaliencyInferer(SimpleInferer):
    """`SimpleInferer` over a `TorchSaliencyPredictor` (args as the predictor's)."""

    def __init__(
        self,
        conv_layer_name: str | None = None,
        target_class: int | None = None,
        network_input_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__(TorchSaliencyPredictor(conv_layer_name, target_class, network_input_size))
