"""Seed 003's `TRTISScanWindowInferer`: the scan-window inferer, with a Triton address as defaults.

Its windows go in batches to whatever model the door loaded (Triton, or a local model); `ip` /
`port` / `protocol` are only the defaults of a Triton connection (the deploy app overrides them
at run time from a flag or environment variable), and `roi_size` comes from `model_config.json`'s
`network_input_size` unless given. Registered with the other inferers, so a deploy app's
`config_inference.json` also runs in `ai4med infer` and the annotation server.

Example:
    >>> TRTISScanWindowInferer(port=8001, roi_size=[16, 16, 16]).url
    'localhost:8001'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ai4med.components.inferers.torch_inferers import TorchScanWindowInferer

__all__ = ["TRTISScanWindowInferer"]


class TRTISScanWindowInferer(TorchScanWindowInferer):
    """Scanning windows client-side, batches of windows to the model.

    Args:
        ip / port / protocol ("HTTP" or "GRPC"): the default Triton address.
        roi_size: window size (default: `network_input_size` of model_config.json).
        batch_size, overlap, blend_mode, ...: as `ScanWindowInferer`.
    """

    def __init__(self, ip: str = "localhost", port: int = 8000, protocol: str = "HTTP",
                 roi_size: Sequence[int] | None = None, batch_size: int = 1, **kwargs: Any) -> None:
        super().__init__(roi_size, batch_size, **kwargs)
        self.ip, self.port, self.protocol = str(ip), int(port), str(protocol).lower()

    @property
    def url(self) -> str:
        return f"{self.ip}:{self.port}"
