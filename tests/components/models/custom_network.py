"""Seed 002's BYOC CustomNetwork, ported to PyTorch (loaded by `path` in a config).

The TF version built its layers inside `get_predictions`; a PyTorch model must own its
parameters before the optimizer is built, so the layers are created in `__init__`
(`num_in_channels` is the one added argument) and kept in `self.net`.
"""

import torch
from torch import nn

from ai4med.components.models.model import Model


class _ShallowUnet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, factor: int) -> None:
        super().__init__()

        def conv(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))

        self.conv1 = nn.Sequential(conv(in_channels, factor), conv(factor, factor * 2))
        self.conv2 = nn.Sequential(conv(factor * 2, factor * 2), conv(factor * 2, factor * 4))
        self.conv7 = nn.Sequential(conv(factor * 4 + factor * 2, factor * 2), conv(factor * 2, factor * 2))
        self.out = nn.Conv3d(factor * 2, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.conv1(x)
        c2 = self.conv2(nn.functional.max_pool3d(c1, 2, 2))
        up = nn.functional.interpolate(c2, scale_factor=2, mode="nearest")
        return self.out(self.conv7(torch.cat([up, c1], dim=1)))


class CustomNetwork(Model):
    def __init__(self, num_classes, factor=32, training=False, data_format="channels_first",
                 final_activation="linear", num_in_channels=1):
        Model.__init__(self)
        if data_format != "channels_first":
            raise ValueError("this example supports channels_first only")
        self.num_classes = num_classes
        self.factor = factor
        self.training = training
        self.data_format = data_format
        self.final_activation = final_activation
        self.channel_axis = 1
        self.net = _ShallowUnet(num_in_channels, num_classes, factor)

    def get_module(self):
        return self.net

    def get_predictions(self, inputs, training, build_ctx=None):
        self.net.train(bool(training))
        output = self.net(inputs)
        if str.lower(self.final_activation) == "softmax":
            output = torch.softmax(output, dim=self.channel_axis)
        elif str.lower(self.final_activation) == "sigmoid":
            output = torch.sigmoid(output)
        elif str.lower(self.final_activation) == "linear":
            pass
        else:
            raise ValueError("Unsupported final_activation, it must of one (softmax, sigmoid or linear), "
                             "but provided:" + self.final_activation)
        return output

    def loss(self):
        return 0

    def get_loss(self):
        return self.loss()
