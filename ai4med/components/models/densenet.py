"""DenseNet121: a 2D/3D classification network, backed by MONAI's DenseNet (121 configuration by default)."""

from __future__ import annotations

from collections.abc import Sequence

from ai4med.components.models.torch_model import TorchModel, int_list, resolve_dims


class DenseNet121(TorchModel):
    """DenseNet-121 classifier on `monai.networks.nets.DenseNet` (block_config 6,12,24,16); outputs (N, num_classes).

    `final_activation` defaults to "linear": the classification losses and aux-ops take
    logits (they apply sigmoid/softmax themselves, as Clara's did).

    Args:
        num_classes: output classes (logits).
        num_in_channels: input channels.
        n_spatial_dim: 2 or 3 (aliases `spatial_dims`, `dims`).
        init_features: filters of the stem.
        growth_rate: filters added per dense layer.
        block_config: dense layers per block (DenseNet-121: 6,12,24,16).
        dropout_prob: dropout in dense layers.
        final_activation: "softmax", "sigmoid" or "linear".

    Example:
        >>> import torch
        >>> m = DenseNet121(num_classes=3, n_spatial_dim=2, block_config=(1, 1, 1, 1), init_features=8)
        >>> m.get_predictions(torch.zeros(2, 1, 32, 32), False, None).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        num_classes: int,
        num_in_channels: int = 1,
        n_spatial_dim: int | None = None,
        init_features: int = 64,
        growth_rate: int = 32,
        block_config: Sequence[int] | str = (6, 12, 24, 16),
        dropout_prob: float = 0.0,
        final_activation: str = "linear",
        data_format: str = "channels_first",
        spatial_dims: int | None = None,
        dims: int | None = None,
    ) -> None:
        from monai.networks.nets import DenseNet

        net = DenseNet(
            spatial_dims=resolve_dims(n_spatial_dim, spatial_dims, dims, default=2),
            in_channels=num_in_channels,
            out_channels=num_classes,
            init_features=init_features,
            growth_rate=growth_rate,
            block_config=tuple(int_list(block_config) or (6, 12, 24, 16)),
            dropout_prob=dropout_prob,
        )
        super().__init__(net, final_activation=final_activation, data_format=data_format)
        self.num_classes = num_classes
