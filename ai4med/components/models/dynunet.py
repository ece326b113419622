"""DynUnet: the nnU-Net-style dynamic U-Net, backed by MONAI's DynUNet."""

from __future__ import annotations

from collections.abc import Sequence

from ai4med.components.models.torch_model import TorchModel, int_list, resolve_dims


class DynUnet(TorchModel):
    """nnU-Net-like U-Net on `monai.networks.nets.DynUNet` (a 4.x addition; no deep supervision).

    Args:
        num_classes: output channels.
        num_in_channels: input channels.
        kernel_size: convolution kernel per level, e.g. [3, 3, 3, 3].
        strides: stride per level (the first is usually 1), e.g. [1, 2, 2, 2].
        upsample_kernel_size: transposed-conv kernel per up level (default `strides[1:]`).
        filters: channels per level (default 32 * 2**level, capped by MONAI).
        norm_name: "instance", "batch" or "group".
        res_block: residual blocks instead of plain conv blocks.
        final_activation: "softmax", "sigmoid" or "linear".
        n_spatial_dim: 2 or 3 (aliases `spatial_dims`, `dims`).

    Example:
        >>> import torch
        >>> m = DynUnet(num_classes=2, kernel_size=[3, 3, 3], strides=[1, 2, 2], filters=[4, 8, 16])
        >>> m.get_predictions(torch.zeros(1, 1, 16, 16, 16), False, None).shape
        torch.Size([1, 2, 16, 16, 16])
    """

    def __init__(
        self,
        num_classes: int,
        num_in_channels: int = 1,
        kernel_size: Sequence[int] | str = (3, 3, 3, 3),
        strides: Sequence[int] | str = (1, 2, 2, 2),
        upsample_kernel_size: Sequence[int] | str | None = None,
        filters: Sequence[int] | str | None = None,
        norm_name: str = "instance",
        dropout: float | None = None,
        res_block: bool = False,
        final_activation: str = "softmax",
        n_spatial_dim: int | None = None,
        data_format: str = "channels_first",
        spatial_dims: int | None = None,
        dims: int | None = None,
    ) -> None:
        from monai.networks.nets import DynUNet

        ks = int_list(kernel_size) or []
        st = int_list(strides) or []
        if len(ks) != len(st):
            raise ValueError(f"kernel_size {ks} and strides {st} must have the same length")
        net = DynUNet(
            spatial_dims=resolve_dims(n_spatial_dim, spatial_dims, dims),
            in_channels=num_in_channels,
            out_channels=num_classes,
            kernel_size=ks,
            strides=st,
            upsample_kernel_size=int_list(upsample_kernel_size) or st[1:],
            filters=int_list(filters),
            dropout=dropout,
            norm_name=norm_name,
            res_block=res_block,
        )
        super().__init__(net, final_activation=final_activation, data_format=data_format)
        self.num_classes = num_classes
