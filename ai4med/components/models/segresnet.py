"""SegResnet: Myronenko's BraTS encoder-decoder, backed by MONAI's SegResNet(VAE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ai4med.components.models.torch_model import TorchModel, int_list, l2_regularization, resolve_dims


class SegResnet(TorchModel):
    """SegResNet segmentation model (Myronenko 2018) on `monai.networks.nets.SegResNet`.

    With `use_vae` the VAE branch of the paper is added (`SegResNetVAE`, needs the fixed
    `input_image_size` of training crops); its loss, times `vae_weight`, and the L2 term
    `reg_weight * sum(w^2)` are returned by `get_loss()` and added to the loss component.

    Args:
        num_classes: output channels.
        num_in_channels: input channels.
        blocks_down: residual blocks per encoder level ("1,2,2,4" or a list).
        blocks_up: residual blocks per decoder level ("1,1,1" or a list).
        init_filters: filters of the first level.
        use_vae: add the VAE regularisation branch.
        use_group_norm: group norm (else batch norm).
        use_group_normG: number of groups.
        reg_weight: L2 weight-regularisation factor.
        dropout_prob: dropout after the first convolution.
        final_activation: "softmax", "sigmoid" or "linear".
        n_spatial_dim: 2 or 3 (aliases `spatial_dims`, `dims`).

    Example:
        >>> import torch
        >>> m = SegResnet(num_classes=3, blocks_down="1,1", blocks_up="1", init_filters=8)
        >>> m.get_predictions(torch.zeros(1, 1, 16, 16, 16), True, None).shape
        torch.Size([1, 3, 16, 16, 16])
    """

    def __init__(
        self,
        num_classes: int,
        num_in_channels: int = 1,
        blocks_down: str | Sequence[int] = "1,2,2,4",
        blocks_up: str | Sequence[int] = "1,1,1",
        init_filters: int = 8,
        use_vae: bool = False,
        input_image_size: Sequence[int] | None = None,
        vae_weight: float = 0.1,
        use_group_norm: bool = True,
        use_group_normG: int = 8,
        reg_weight: float = 0.0,
        dropout_prob: float | None = None,
        final_activation: str = "softmax",
        n_spatial_dim: int | None = None,
        upsample_mode: str = "nontrainable",
        data_format: str = "channels_first",
        spatial_dims: int | None = None,
        dims: int | None = None,
    ) -> None:
        from monai.networks.nets import SegResNet, SegResNetVAE

        kwargs: dict[str, Any] = dict(
            spatial_dims=resolve_dims(n_spatial_dim, spatial_dims, dims),
            init_filters=init_filters,
            in_channels=num_in_channels,
            out_channels=num_classes,
            dropout_prob=dropout_prob or None,
            norm=("GROUP", {"num_groups": use_group_normG}) if use_group_norm else "BATCH",
            blocks_down=tuple(int_list(blocks_down) or ()),
            blocks_up=tuple(int_list(blocks_up) or ()),
            upsample_mode=upsample_mode,
        )
        if use_vae:
            if not input_image_size:
                raise ValueError("SegResnet with use_vae=True needs input_image_size (the training crop size)")
            net = SegResNetVAE(input_image_size=tuple(int(s) for s in input_image_size), **kwargs)
        else:
            net = SegResNet(**kwargs)
        super().__init__(net, final_activation=final_activation, data_format=data_format)
        self.use_vae = use_vae
        self.vae_weight = vae_weight
        self.reg_weight = reg_weight
        self._vae_loss: torch.Tensor | None = None

    def forward_net(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.use_vae:
            out, self._vae_loss = out
        return out

    def get_loss(self) -> Any:
        """`vae_weight * vae_loss` of the last training forward + `reg_weight * sum(w^2)`."""
        extra: Any = l2_regularization(self.net, self.reg_weight)
        if self.use_vae and self._vae_loss is not None:
            extra = extra + self.vae_weight * self._vae_loss
        return extra
