"""Tiny networks shared by the inferer tests (a uniquely named module: test folders share one sys.path)."""

import torch


def make_net(in_ch: int = 1, out_ch: int = 2, dims: int = 3) -> torch.nn.Module:
    conv = torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d
    torch.manual_seed(0)
    return torch.nn.Sequential(
        conv(in_ch, 4, 3, padding=1), torch.nn.ReLU(), conv(4, out_ch, 3, padding=1)
    ).eval()
