"""The planner's input: an MSD `dataset.json` or an ai4med datalist -> labelled cases.

MSD (Medical Segmentation Decathlon) files name channels under `modality` (`{"0": "CT"}`)
and classes under `labels`; nnU-Net v2 files use `channel_names`. An ai4med datalist has
`training` / `validation` lists (both are used: the planner makes its own folds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ai4med.errors import UserError

__all__ = ["PlanInput", "read_plan_input"]


@dataclass
class PlanInput:
    """Labelled cases (absolute paths), channel modalities and class names of a dataset."""

    path: str
    cases: list[dict[str, Any]]
    modalities: list[str]
    labels: dict[int, str] = field(default_factory=dict)
    name: str = "dataset"
    test: list[Any] = field(default_factory=list)

    @property
    def num_channels(self) -> int:
        return len(self.modalities)


def _channels(item: dict[str, Any]) -> int:
    image = item["image"]
    return len(image) if isinstance(image, list) else 1


def read_plan_input(path: str, modalities: list[str] | None = None, base_dir: str | None = None) -> PlanInput:
    """Read `path`; `modalities` (one per channel) overrides the file's `modality`/`channel_names`."""
    from ai4med.io.datalist import load_datalists, read_datalist_json

    path = os.path.abspath(path)
    data = read_datalist_json(path)
    keys = [k for k in ("training", "validation") if isinstance(data.get(k), list) and data[k]]
    if not keys:
        raise UserError(f"{path}: no labelled cases: expected a non-empty 'training' list")
    lists = load_datalists(path, keys, base_dir=base_dir, check_files=True, path_keys=("image", "label"))
    cases: list[dict[str, Any]] = []
    seen: set[str] = set()
    for k in keys:
        for i, item in enumerate(lists[k]):
            if "label" not in item:
                raise UserError(f"{path}: /{k}/{i} has no 'label'; the planner needs labelled cases")
            key = repr(item["image"])
            if key not in seen:
                seen.add(key)
                cases.append({"image": item["image"], "label": item["label"]})
    n_ch = {_channels(c) for c in cases}
    if len(n_ch) != 1:
        raise UserError(f"{path}: cases have different channel counts {sorted(n_ch)}")
    n = n_ch.pop()
    mods = _file_modalities(data)
    if modalities:
        mods = [m.upper() for m in modalities]
    if not mods:
        mods = ["OTHER"] * n
    if len(mods) == 1 and n > 1:
        mods = mods * n
    if len(mods) != n and n != 1:  # n == 1 with several modalities: a 4D file (checked when read)
        raise UserError(f"{path}: {len(mods)} modalities for {n} channels per case (give one --modality per channel)")
    labels = {}
    raw = data.get("labels")
    if isinstance(raw, dict):
        try:
            labels = {int(k): str(v) for k, v in raw.items()}
        except ValueError:  # nnU-Net v2: {"background": 0, "liver": 1}
            labels = {int(v): str(k) for k, v in raw.items() if isinstance(v, int)}
    test = data.get("test") if isinstance(data.get("test"), list) else []
    return PlanInput(path, cases, mods, dict(sorted(labels.items())), str(data.get("name") or "dataset"), test)


def _file_modalities(data: dict[str, Any]) -> list[str]:
    raw = data.get("channel_names") or data.get("modality")
    if isinstance(raw, dict):
        try:
            keys = sorted(raw, key=lambda s: int(s))
        except ValueError:
            raise UserError(f"channel keys of 'modality'/'channel_names' must be 0, 1, ...; got {sorted(raw)}") from None
        return [str(raw[k]).upper() for k in keys]
    if isinstance(raw, list):
        return [str(m).upper() for m in raw]
    if isinstance(raw, str):
        return [raw.upper()]
    return []
