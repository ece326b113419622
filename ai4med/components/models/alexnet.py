"""Alexnet: a small AlexNet-style 2D/3D classifier with optional multiple-instance learning."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ai4med.components.models.torch_model import TorchModel, l2_regularization, resolve_dims


def _norm(kind: str, channels: int, dims: int, groups: int) -> nn.Module:
    if kind == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "group":
        return nn.GroupNorm(min(groups, channels), channels)
    return nn.Identity()


class AlexNetModule(nn.Module):
    """Five convolutions (num_feat x 1, 3, 6, 4, 4) with pooling, then a 3-layer MLP head.

    Global average pooling replaces AlexNet's fixed 6x6 pooling so any input >= 32 works.
    With `mil`, inputs are bags (N, K, C, *spatial) and the bag logit is the max over K.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        num_classes: int,
        num_feat: int = 64,
        norm: str = "none",
        groups: int = 8,
        dropout_prob: float = 0.5,
        hidden: int | None = None,
        mil: bool = False,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        widths = [num_feat * m for m in (1, 3, 6, 4, 4)]
        layers: list[nn.Module] = []
        prev = in_channels
        for i, w in enumerate(widths):
            k, s, p = (11, 4, 2) if i == 0 else ((5, 1, 2) if i == 1 else (3, 1, 1))
            layers += [conv(prev, w, k, s, p), _norm(norm, w, dims, groups), nn.ReLU(inplace=True)]
            if i in (0, 1, 4):
                layers.append(pool(3, 2, padding=1))
            prev = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
        hid = hidden or num_feat * 64
        self.classifier = nn.Sequential(
            nn.Dropout(dropout_prob),
            nn.Linear(prev, hid),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout_prob),
            nn.Linear(hid, hid),
            nn.ReLU(inplace=True),
            nn.Linear(hid, num_classes),
        )
        self.dims = dims
        self.mil = mil

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bag = None
        if self.mil:
            bag = x.shape[:2]
            x = x.flatten(0, 1)
        out = self.classifier(torch.flatten(self.pool(self.features(x)), 1))
        if bag is not None:
            out = out.view(*bag, -1).amax(dim=1)
        return out


class Alexnet(TorchModel):
    """AlexNet-style classifier (Krizhevsky 2012), 2D or 3D; outputs (N, num_classes) logits.

    Args:
        num_classes: output classes.
        num_in_channels: input channels.
        num_feat: filters of the first convolution (64 in AlexNet).
        mil: multiple-instance learning; inputs (N, K, C, *spatial), max over the K instances.
        use_batch_norm: batch norm after each convolution.
        use_group_norm: group norm after each convolution (with `use_group_normG` groups).
        reg_weight: L2 weight-regularisation factor, returned by `get_loss()`.
        dropout_prob: dropout in the head.
        num_hidden: width of the head (default 64 * num_feat).
        final_activation: "softmax", "sigmoid" or "linear".
        n_spatial_dim: 2 or 3 (aliases `spatial_dims`, `dims`).

    Example:
        >>> import torch
        >>> m = Alexnet(num_classes=2, num_feat=4, n_spatial_dim=2)
        >>> m.get_predictions(torch.zeros(2, 1, 32, 32), False, None).shape
        torch.Size([2, 2])
    """

    def __init__(
        self,
        num_classes: int,
        num_in_channels: int = 1,
        num_feat: int = 64,
        mil: bool = False,
        use_batch_norm: bool = False,
        use_group_norm: bool = False,
        use_group_normG: int = 8,
        reg_weight: float = 0.0,
        dropout_prob: float = 0.5,
        num_hidden: int | None = None,
        final_activation: str = "linear",
        n_spatial_dim: int | None = None,
        data_format: str = "channels_first",
        spatial_dims: int | None = None,
        dims: int | None = None,
    ) -> None:
        if data_format != "channels_first" and mil:
            raise ValueError("Alexnet with mil=True supports data_format='channels_first' only")
        norm = "batch" if use_batch_norm else ("group" if use_group_norm else "none")
        net = AlexNetModule(
            dims=resolve_dims(n_spatial_dim, spatial_dims, dims, default=2),
            in_channels=num_in_channels,
            num_classes=num_classes,
            num_feat=num_feat,
            norm=norm,
            groups=use_group_normG,
            dropout_prob=dropout_prob,
            hidden=num_hidden,
            mil=mil,
        )
        super().__init__(net, final_activation=final_activation, data_format=data_format)
        self.num_classes = num_classes
        self.reg_weight = reg_weight

    def get_loss(self) -> Any:
        return l2_regularization(self.net, self.reg_weight)
