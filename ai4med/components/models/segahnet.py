"""SegAhnet: Clara's anisotropic hybrid network, backed by MONAI's AHNet."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ai4med.components.models.torch_model import TorchModel, int_list, resolve_dims

logger = logging.getLogger(__name__)


class SegAhnet(TorchModel):
    """3D (or 2D) AH-Net segmentation model (Liu et al. 2018) on `monai.networks.nets.AHNet`.

    Spatial sizes must be divisible by 32. Clara initialised the 2D encoder from ImageNet
    Keras weights; those cannot be loaded into a PyTorch network, so `pretrain_weight_name`
    and `pretrain_weight_url` are accepted and ignored with a warning.

    Args:
        num_classes: output channels.
        num_in_channels: input channels.
        if_use_psp: add the pyramid-scene-parsing block (4 pooling levels).
        plane: Clara's 2D-slice plane; AHNet works on the last axis ("z") only.
        final_activation: "softmax", "sigmoid" or "linear".
        n_spatial_dim: 2 or 3 (aliases `spatial_dims`, `dims`).
        layers: residual blocks per encoder stage (ResNet50: 3,4,6,3).
        upsample_mode: "transpose" or "bilinear"/"trilinear".

    Example:
        >>> import torch
        >>> m = SegAhnet(num_classes=2, layers=(1, 1, 1, 1))
        >>> m.get_predictions(torch.zeros(1, 1, 32, 32, 32), False, None).shape
        torch.Size([1, 2, 32, 32, 32])
    """

    def __init__(
        self,
        num_classes: int,
        num_in_channels: int = 1,
        if_use_psp: bool = False,
        plane: str = "z",
        pretrain_weight_name: str | None = None,
        pretrain_weight_url: str | None = None,
        final_activation: str = "softmax",
        n_spatial_dim: int | None = None,
        layers: Sequence[int] | str = (3, 4, 6, 3),
        upsample_mode: str = "transpose",
        data_format: str = "channels_first",
        spatial_dims: int | None = None,
        dims: int | None = None,
    ) -> None:
        from monai.networks.nets import AHNet

        if str(plane).lower() != "z":
            raise ValueError(f"SegAhnet supports plane='z' only, got {plane!r}")
        if pretrain_weight_name or pretrain_weight_url:
            logger.warning("SegAhnet: Keras pretrained weights are not loadable in PyTorch; training from scratch")
        net = AHNet(
            layers=tuple(int_list(layers) or (3, 4, 6, 3)),
            spatial_dims=resolve_dims(n_spatial_dim, spatial_dims, dims),
            in_channels=num_in_channels,
            out_channels=num_classes,
            psp_block_num=4 if if_use_psp else 0,
            upsample_mode=upsample_mode,
            pretrained=False,
        )
        super().__init__(net, final_activation=final_activation, data_format=data_format)
        self.num_classes = num_classes


class SegmAhnet3D(SegAhnet):
    """The 2019 (Clara 1.x) name of SegAhnet."""
