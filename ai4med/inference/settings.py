"""How a model runs, as configs and command lines say it: `use_amp` -> precision.

Training and `ai4med infer` / `evaluate` read a config's `use_amp` through `amp_request`, so
one value means the same to both (a numeric 1 is "auto" to either).

Example:
    >>> amp_request(True), amp_request("BF16"), amp_request(None), amp_request("maybe")
    ('auto', 'bf16', 'fp32', None)
"""

from __future__ import annotations

from typing import Any

__all__ = ["AMP_TYPES", "amp_request", "precision_of_use_amp"]

AMP_TYPES = ("bf16", "fp16")


def amp_request(use_amp: Any) -> str | None:
    """The precision a `use_amp` value asks for: "bf16"/"fp16" as chosen, "auto" for true (the
    machine's mode), "fp32" for false or absent; None when it is no such value."""
    if use_amp is None or isinstance(use_amp, bool):
        return "auto" if use_amp else "fp32"
    value = str(use_amp).strip().lower()
    if value in AMP_TYPES:
        return value
    if value in ("1", "true", "yes", "on"):
        return "auto"
    return "fp32" if value in ("0", "false", "no", "off") else None


def precision_of_use_amp(use_amp: Any) -> str:
    """The inference precision a config's `use_amp` asks for: "bf16"/"fp16" as chosen, true -> "auto",
    anything else (absent, false, unknown) -> exact "fp32"."""
    return amp_request(use_amp) or "fp32"
