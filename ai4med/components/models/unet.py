"""Unet: a residual U-Net, backed by MONAI's UNet."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ai4med.components.models.torch_model import TorchModel, int_list, resolve_dims

logger = logging.getLogger(__name__)


class Unet(TorchModel):
    """U-Net segmentation model on `monai.networks.nets.UNet`.

    Clara's `nf_enc` (encoder filters, e.g. "32,64,64,64") is accepted as `channels`;
    its `nf_dec` is ignored because MONAI's decoder mirrors the encoder.

    Args:
        num_classes: output channels.
        num_in_channels: input channels.
        channels: filters per level, e.g. [16, 32, 64, 128, 256].
        strides: down-sampling per level transition (default 2 for each).
        num_res_units: residual units per block.
        norm: "batch", "instance" or "group" (MONAI layer-factory names).
        dropout: dropout probability.
        final_activation: "softmax", "sigmoid" or "linear".
        n_spatial_dim: 2 or 3 (aliases `spatial_dims`, `dims`).

    Example:
        >>> import torch
        >>> m = Unet(num_classes=2, channels=[4, 8, 16], n_spatial_dim=2)
        >>> m.get_predictions(torch.zeros(1, 1, 16, 16), False, None).shape
        torch.Size([1, 2, 16, 16])
    """

    def __init__(
        self,
        num_classes: int,
        num_in_channels: int = 1,
        channels: Sequence[int] | str | None = None,
        strides: Sequence[int] | str | None = None,
        num_res_units: int = 2,
        kernel_size: int = 3,
        norm: str = "batch",
        dropout: float = 0.0,
        final_activation: str = "softmax",
        n_spatial_dim: int | None = None,
        nf_enc: Sequence[int] | str | None = None,
        nf_dec: Sequence[int] | str | None = None,
        data_format: str = "channels_first",
        spatial_dims: int | None = None,
        dims: int | None = None,
    ) -> None:
        from monai.networks.nets import UNet

        chans = int_list(channels) or int_list(nf_enc) or [16, 32, 64, 128, 256]
        if nf_dec is not None:
            logger.warning("Unet: nf_dec is ignored; the decoder mirrors the encoder channels %s", chans)
        strd = int_list(strides) or [2] * (len(chans) - 1)
        net = UNet(
            spatial_dims=resolve_dims(n_spatial_dim, spatial_dims, dims),
            in_channels=num_in_channels,
            out_channels=num_classes,
            channels=chans,
            strides=strd,
            kernel_size=kernel_size,
            num_res_units=num_res_units,
            norm=norm,
            dropout=dropout,
        )
        super().__init__(net, final_activation=final_activation, data_format=data_format)
        self.num_classes = num_classes
