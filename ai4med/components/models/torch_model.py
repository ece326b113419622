"""TorchModel: a seed-002 `Model` backed by one `torch.nn.Module`.

The training loop needs a module to optimise, move and checkpoint, while configs and
BYOC code speak the seed's `get_predictions(inputs, is_training, build_ctx)`. This base
keeps the two together: the module is `self.net` (also `get_module()`), and
`get_predictions` runs it, applies `final_activation` like the seed's CustomNetwork and
converts `channels_last` data around a channels-first network.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ai4med.common.build_ctx import BuildContext
from ai4med.components.models.model import Model

logger = logging.getLogger(__name__)

FINAL_ACTIVATIONS = ("softmax", "sigmoid", "linear")


def apply_final_activation(x: torch.Tensor, name: str, channel_axis: int = 1) -> torch.Tensor:
    """Softmax over channels, sigmoid or identity, as in seed 002's CustomNetwork."""
    key = str(name).lower()
    if key == "softmax":
        return torch.softmax(x, dim=channel_axis)
    if key == "sigmoid":
        return torch.sigmoid(x)
    if key == "linear":
        return x
    raise ValueError(
        f"Unsupported final_activation, it must be one of (softmax, sigmoid or linear), but provided: {name}"
    )


def resolve_dims(*candidates: int | None, default: int = 3) -> int:
    """The first non-None spatial-dims value (Clara `n_spatial_dim`, MONAI `spatial_dims`, `dims`)."""
    for c in candidates:
        if c is not None:
            if int(c) not in (2, 3):
                raise ValueError(f"spatial dims must be 2 or 3, got {c}")
            return int(c)
    return default


def int_list(value: str | Sequence[int] | int | None) -> list[int] | None:
    """`"1,2,2,4"` (Clara's string form) or a list -> list of ints."""
    if value is None:
        return None
    if isinstance(value, str):
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def find_module(model: Any) -> nn.Module:
    """The `nn.Module` of a model: itself, `get_module()`, or a `net`/`model`/`network` attribute.

    Lets the training loop accept BYOC models that follow the seed (which keeps the
    network in `self.model`) as well as `TorchModel` subclasses.
    """
    if isinstance(model, nn.Module):
        return model
    getter = getattr(model, "get_module", None)
    if callable(getter):
        module = getter()
        if isinstance(module, nn.Module):
            return module
    for attr in ("net", "model", "network"):
        module = getattr(model, attr, None)
        if isinstance(module, nn.Module):
            return module
    raise TypeError(f"{type(model).__name__} exposes no torch.nn.Module (get_module(), .net or .model)")


def as_model(obj: Any, file: str | None = None, pointer: str = "/model") -> Any:
    """`obj` checked to be a model component: a seed `Model` exposing its network, or a plain
    `torch.nn.Module` (e.g. `monai.networks.nets.BasicUNet` by `path`), which is wrapped in a
    `TorchModel` (linear final activation). Anything else is a ConfigError at `pointer`, raised
    when the config is built rather than at the first training step."""
    from ai4med.config.errors import ConfigError

    if isinstance(obj, TorchModel):
        return obj
    if isinstance(obj, nn.Module) and not callable(getattr(obj, "get_predictions", None)):
        return TorchModel(obj)
    try:
        find_module(obj)
    except TypeError:
        raise ConfigError(
            f"{type(obj).__module__}.{type(obj).__name__} is not a model: a model component is a torch.nn.Module "
            "or a seed Model (get_predictions) keeping its network in get_module(), .net, .model or .network",
            file=file, pointer=pointer) from None
    if not callable(getattr(obj, "get_predictions", None)):
        raise ConfigError(f"{type(obj).__name__} holds a network but has no get_predictions(inputs, is_training, "
                          "build_ctx): derive it from ai4med.components.models.model.Model", file=file,
                          pointer=pointer)
    return obj


class PredictionModule(nn.Module):
    """A seed `Model` as an `nn.Module` whose output is `get_predictions` (final activation applied),
    so inferers and exporters see what the model's users see."""

    def __init__(self, model: Any, module: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.net = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.get_predictions(x, False, None)


class TorchModel(Model):
    """A model whose network is one `torch.nn.Module` built in `__init__`.

    Args:
        net: the channels-first network producing raw outputs (logits).
        final_activation: "softmax" (over channels), "sigmoid" or "linear".
        data_format: "channels_first" or "channels_last" layout of inputs and predictions.

    Example:
        >>> m = TorchModel(nn.Conv2d(1, 2, 1), final_activation="softmax")
        >>> m.get_predictions(torch.zeros(1, 1, 4, 4), False, None).sum(1).mean().item()
        1.0
    """

    def __init__(self, net: nn.Module, final_activation: str = "linear", data_format: str = "channels_first") -> None:
        Model.__init__(self)
        if str(final_activation).lower() not in FINAL_ACTIVATIONS:
            raise ValueError(
                f"Unsupported final_activation, it must be one of (softmax, sigmoid or linear), "
                f"but provided: {final_activation}"
            )
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}")
        self.net = net
        self.final_activation = str(final_activation).lower()
        self.data_format = data_format

    def get_module(self) -> nn.Module:
        return self.net

    def forward_net(self, x: torch.Tensor) -> torch.Tensor:
        """Run the channels-first network; subclasses with extra outputs override this."""
        return self.net(x)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Raw network output (before `final_activation`) in the model's data format."""
        last = self.data_format == "channels_last"
        x = torch.movedim(inputs, -1, 1) if last else inputs
        out = self.forward_net(x)
        return torch.movedim(out, 1, -1) if last and out.ndim > 2 else out

    def get_predictions(self, inputs: Any, is_training: bool, build_ctx: BuildContext | None = None) -> torch.Tensor:
        """Network output after `final_activation`; switches the module's train/eval mode to `is_training`."""
        training = bool(is_training)
        if self.net.training != training:
            self.net.train(training)
        return self(inputs)

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        """Predictions in the module's current mode (what inferers call)."""
        out = self.logits(inputs)
        channel_axis = -1 if self.data_format == "channels_last" and out.ndim > 2 else 1
        return apply_final_activation(out, self.final_activation, channel_axis)

    # Convenience delegates so a model can be handled like its module.
    def parameters(self) -> Iterator[nn.Parameter]:
        return self.net.parameters()

    def state_dict(self) -> dict[str, Any]:
        return self.net.state_dict()

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> Any:
        return self.net.load_state_dict(state, strict=strict)

    def to(self, *args: Any, **kwargs: Any) -> TorchModel:
        self.net.to(*args, **kwargs)
        return self

    def train(self, mode: bool = True) -> TorchModel:
        self.net.train(mode)
        return self


def l2_regularization(net: nn.Module, weight: float) -> torch.Tensor | float:
    """`weight * sum(w^2)` over conv/linear weights (Clara's `reg_weight`), 0 when weight is 0."""
    if not weight:
        return 0.0
    terms = [p.pow(2).sum() for n, p in net.named_parameters() if n.endswith("weight") and p.ndim > 1]
    return weight * torch.stack(terms).sum() if terms else 0.0
