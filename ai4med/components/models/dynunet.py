"""DynUnet: the nnU-Net-style dynamic U-Net, backed by MONAI's DynUNet.

With `deep_supervision`, MONAI's network returns, in training mode, the full-resolution
output stacked with `deep_supr_num` upsampled outputs of deeper decoder levels. The model
returns the main output from `get_predictions` (so metrics, aux-ops and the configured
loss see an ordinary prediction) and keeps the extra heads for the training step, which
adds the configured loss on each head with nnU-Net's halving weights
(`deep_supervision_weights`). In eval mode there is a single output, as without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ai4med.components.models.torch_model import TorchModel, apply_final_activation, int_list, resolve_dims


class DynUnet(TorchModel):
    """nnU-Net-like U-Net on `monai.networks.nets.DynUNet` (a 4.x addition).

    Args:
        num_classes: output channels.
        num_in_channels: input channels.
        kernel_size: convolution kernel per level, e.g. [3, 3, 3, 3], or per level and axis
            (anisotropic, as `ai4med plan` writes), e.g. [[3, 3, 1], [3, 3, 3], [3, 3, 3]].
        strides: stride per level (the first is usually 1), e.g. [1, 2, 2, 2], or per level and
            axis, e.g. [[1, 1, 1], [2, 2, 1], [2, 2, 2]].
        upsample_kernel_size: transposed-conv kernel per up level (default `strides[1:]`).
        filters: channels per level (default 32 * 2**level, capped by MONAI).
        norm_name: "instance", "batch" or "group".
        res_block: residual blocks instead of plain conv blocks.
        final_activation: "softmax", "sigmoid" or "linear".
        n_spatial_dim: 2 or 3 (aliases `spatial_dims`, `dims`).
        deep_supervision: also supervise `deep_supr_num` deeper decoder levels while training.
        deep_supr_num: how many extra heads (1 .. len(strides) - 2).

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
        deep_supervision: bool = False,
        deep_supr_num: int = 1,
    ) -> None:
        from monai.networks.nets import DynUNet

        ks = _levels(kernel_size)
        st = _levels(strides)
        if len(ks) != len(st):
            raise ValueError(f"kernel_size {ks} and strides {st} must have the same length")
        if deep_supervision and not 1 <= int(deep_supr_num) <= len(st) - 2:
            raise ValueError(f"deep_supr_num must be in 1..{len(st) - 2} (len(strides) - 2) for strides {st}, "
                             f"got {deep_supr_num}")
        net = DynUNet(
            spatial_dims=resolve_dims(n_spatial_dim, spatial_dims, dims),
            in_channels=num_in_channels,
            out_channels=num_classes,
            kernel_size=ks,
            strides=st,
            upsample_kernel_size=_levels(upsample_kernel_size) or st[1:],
            filters=int_list(filters),
            dropout=dropout,
            norm_name=norm_name,
            res_block=res_block,
            deep_supervision=bool(deep_supervision),
            deep_supr_num=int(deep_supr_num),
        )
        super().__init__(net, final_activation=final_activation, data_format=data_format)
        self.num_classes = num_classes
        self.deep_supervision = bool(deep_supervision)
        self._heads: list[torch.Tensor] = []

    def forward_net(self, x: torch.Tensor) -> torch.Tensor:
        """The main output; in training with deep supervision, the extra heads are kept aside."""
        out = self.net(x)
        if self.deep_supervision and self.net.training and out.ndim == x.ndim + 1:
            self._heads = list(torch.unbind(out[:, 1:], dim=1))
            return out[:, 0]
        self._heads = []
        return out

    def deep_supervision_predictions(self) -> list[torch.Tensor]:
        """The extra heads of the last training forward pass, activated and laid out like predictions.

        They are handed over once (a second call returns []), so no graph outlives its step."""
        last = self.data_format == "channels_last"
        heads = [torch.movedim(h, 1, -1) if last else h for h in self._heads]
        self._heads = []
        return [apply_final_activation(h, self.final_activation, -1 if last else 1) for h in heads]


def _levels(value: Sequence[int] | Sequence[Sequence[int]] | str | None) -> list:
    """Per-level ints, or per-level lists of per-axis ints (MONAI DynUNet takes both)."""
    if value is not None and not isinstance(value, str) and any(isinstance(v, (list, tuple)) for v in value):
        return [[int(a) for a in v] if isinstance(v, (list, tuple)) else int(v) for v in value]
    return int_list(value) or []


def deep_supervision_weights(n_heads: int) -> list[float]:
    """nnU-Net's weights for the main output and `n_heads` deeper heads: halving, summing to 1.

    >>> deep_supervision_weights(2)
    [0.5714285714285714, 0.2857142857142857, 0.14285714285714285]
    """
    raw = [0.5**i for i in range(n_heads + 1)]
    return [w / sum(raw) for w in raw]
