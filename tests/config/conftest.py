"""Fixtures of the config-engine tests: small fake components in throwaway registries,
so these tests do not wait on the real component catalogue."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from ai4med.config.mmar import Mmar
from ai4med.config.registry import Registry


class LoadNifty:
    def __init__(self, fields, as_closest_canonical=False):
        self.fields = fields
        self.as_closest_canonical = as_closest_canonical


class ScaleIntensityRange:
    def __init__(self, fields, a_min, a_max, b_min, b_max, clip=False, dtype="float32"):
        if a_min >= a_max:
            raise ValueError(f"a_min ({a_min}) must be smaller than a_max ({a_max})")
        self.fields, self.a_min, self.a_max, self.b_min, self.b_max = fields, a_min, a_max, b_min, b_max
        self.clip, self.dtype = clip, dtype


class ScaleByResolution:
    def __init__(self, fields, target_resolution, is_label: bool = False):
        self.fields, self.target_resolution, self.is_label = fields, target_resolution, is_label


class SegResnet:
    def __init__(self, num_classes: int = 2, init_filters: int = 8):
        self.num_classes, self.init_filters = num_classes, init_filters


class Dice:
    def __init__(self, skip_background=False):
        self.skip_background = skip_background


class Adam:
    def __init__(self, lr=1e-3, epsilon=1e-7):
        self.lr, self.epsilon = lr, epsilon


class DecayLRonStep:
    def __init__(self, decay_ratio, decay_freq):
        self.decay_ratio, self.decay_freq = decay_ratio, decay_freq


class WriteNiftyResults:
    def __init__(self, applied_key, dtype="float32"):
        self.applied_key, self.dtype = applied_key, dtype


class ComputeAverageDice:
    def __init__(self, name, field, report_path=None, is_key_metric=False):
        self.name, self.field, self.report_path, self.is_key_metric = name, field, report_path, is_key_metric


@pytest.fixture
def registries() -> dict[str, Registry]:
    """kind -> Registry of the fake components above."""
    return {
        "transforms": Registry("transforms", {
            "LoadNifty": LoadNifty, "ScaleIntensityRange": ScaleIntensityRange,
            "ScaleByResolution": ScaleByResolution,
        }),
        "models": Registry("models", {"SegResnet": SegResnet}),
        "losses": Registry("losses", {"Dice": Dice}),
        "optimizers": Registry("optimizers", {"Adam": Adam}),
        "lr_policies": Registry("lr_policies", {"DecayLRonStep": DecayLRonStep}),
        "writers": Registry("writers", {"WriteNiftyResults": WriteNiftyResults}),
        "metrics": Registry("metrics", {"ComputeAverageDice": ComputeAverageDice}),
    }


@pytest.fixture
def write_json() -> Callable[[str | os.PathLike[str], Any], str]:
    def write(path: str | os.PathLike[str], obj: Any) -> str:
        os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
        with open(path, "w") as fh:
            json.dump(obj, fh, indent=2)
        return os.fspath(path)

    return write


@pytest.fixture
def mmar(tmp_path):
    """A fresh MMAR; deactivated afterwards so sys.path and sys.modules stay clean."""
    m = Mmar.create(tmp_path / "mmar")
    yield m
    m.deactivate()

