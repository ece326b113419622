"""Apply the planning rules to a fingerprint: `plans.json`.

Every planned value comes from one function of `rules`; the plans name that rule next to the
value (`"rules"`), so a reader can look up why. The network's memory and time are measured
(`memory.measure_step`), not modelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ai4med.errors import UserError
from ai4med.plan import rules
from ai4med.plan.memory import measure_steps, net_args, step_flops

logger = logging.getLogger(__name__)

__all__ = ["Budget", "BUDGETS", "resolve_budget", "make_plans"]

GIB = 1024**3
MIN_LEVELS = 3


@dataclass
class Budget:
    """What the plan must fit: a device, its memory, and (CPU) a wall-time for training.

    `edge` is the initial patch edge (`rules.initial_patch_size`); `base_features` /
    `max_features` the DynUnet filters (`rules.features_per_stage`); `min_iterations` the
    fewest training steps a CPU budget must allow (our rule: a patch whose step is so slow that
    the budget holds fewer steps is shrunk, as a memory-bound one is). nnU-Net's patch rule assumes
    250 000 steps; in a CPU budget of minutes more, smaller steps win: on the MNI152 task at 600 s
    a floor of 250 steps gave an 80x80x64 patch and Dice 0.875 (648 steps), 1000 steps a 56x64x56
    patch and Dice 0.894 (1536 steps).
    """

    name: str
    kind: str  # "cpu" or "gpu"
    device: str
    memory_bytes: float
    time_s: float | None = None
    edge: int = 256
    base_features: int = 32
    max_features: int = 320
    min_iterations: int = 0


BUDGETS: dict[str, Budget] = {
    "cpu": Budget("cpu", "cpu", "cpu", 2 * GIB, time_s=3600, edge=96, base_features=16, max_features=128,
                  min_iterations=1000),
    **{f"gpu{g}": Budget(f"gpu{g}", "gpu", "cuda", g * GIB) for g in (8, 11, 16, 24, 40, 80)},
}


def resolve_budget(name: str, memory_gb: float | None = None, time_s: float | None = None,
                   device: str | None = None) -> Budget:
    """A named budget with optional overrides; an unknown name is an error listing the known ones."""
    if name not in BUDGETS:
        raise UserError(f"unknown --budget {name!r}; choose one of {sorted(BUDGETS)}")
    b = Budget(**asdict(BUDGETS[name]))
    if memory_gb is not None:
        if memory_gb <= 0:
            raise UserError(f"--memory-gb must be > 0, got {memory_gb}")
        b.memory_bytes = memory_gb * GIB
    if time_s is not None:
        if time_s <= 0:
            raise UserError(f"--time-budget-s must be > 0, got {time_s}")
        b.time_s = float(time_s)
    if device:
        b.device = device
    if b.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            logger.warning("budget %s asks for CUDA, none here: memory is measured on the CPU instead", b.name)
            b.device = "cpu"
    return b


def _topology(spacing: Sequence[float], patch: Sequence[int], budget: Budget, in_ch: int, n_cls: int):
    pools, strides, kernels, patch, _ = rules.pool_and_conv_props(spacing, patch)
    filters = rules.features_per_stage(len(strides), budget.base_features, budget.max_features)
    ds, ds_num = rules.deep_supervision(len(strides))
    return patch, net_args(in_ch, n_cls, kernels, strides, filters, ds, ds_num)


class _Meter:
    """Step memory per topology (a line through two measured sizes: the bytes autograd saves grow
    linearly with the voxels) and step time from multiply-adds (`memory.step_flops`) at a measured
    seconds-per-multiply-add (calibrated once, on the first topology's larger probe)."""

    def __init__(self, budget: Budget, measure: Callable[..., list[dict[str, Any]]], precision: str = "fp32") -> None:
        self.budget, self.measure, self.precision = budget, measure, precision
        self.calib: dict[str, tuple[float, float]] = {}
        self.s_per_flop: float | None = None
        self.runs: list[dict[str, Any]] = []
        self.measured: dict[tuple, dict[str, Any]] = {}

    def _key(self, args: dict[str, Any]) -> str:
        return repr((args["strides"], args["kernel_size"], args["filters"]))

    def run(self, args: dict[str, Any], shapes: list[tuple[list[int], int]]) -> list[dict[str, Any]]:
        res = self.measure(args, shapes, self.budget.device, precision=self.precision)
        self.runs.extend(res)
        return res

    def at(self, args: dict[str, Any], patch: Sequence[int], batch: int) -> dict[str, Any]:
        """The measurement at (patch, batch), run once."""
        key = (self._key(args), tuple(patch), batch)
        if key not in self.measured:
            self.measured[key] = self.run(args, [(list(patch), batch)])[0]
        return self.measured[key]

    def estimate(self, args: dict[str, Any], patch: Sequence[int], batch: int) -> tuple[float, float]:
        key = self._key(args)
        if key not in self.calib:  # 2 and 4 voxels at the bottleneck, batch 1: a line through both
            div = np.prod(np.asarray(args["strides"]), axis=0)
            small, big = self.run(args, [([int(2 * d) for d in div], 1), ([int(4 * d) for d in div], 1)])
            v1, v2 = float(np.prod(small["patch"])), float(np.prod(big["patch"]))
            slope = max(big["peak_bytes"] - small["peak_bytes"], 0.0) / (v2 - v1)
            self.calib[key] = (max(small["peak_bytes"] - slope * v1, 0.0), slope)
            if self.s_per_flop is None:
                self.s_per_flop = big["step_seconds"] / step_flops(args, big["patch"], 1)
        m0, m1 = self.calib[key]
        return m0 + m1 * float(np.prod(patch)) * batch, float(self.s_per_flop) * step_flops(args, list(patch), batch)


def training_precision(budget: Budget) -> str:
    """The autocast precision `use_amp: true` trains with where the budget's steps are measured: fp16 on
    CUDA, bf16 on a CPU with AMX-BF16 (twice the fp32 speed of a training step there), else fp32 (where
    `use_amp` is written false). nnU-Net trains with autocast on GPUs for the same reason."""
    from ai4med.components.inferers.precision import resolve_precision

    return resolve_precision("auto", budget.device)


def make_plans(
    fp: dict[str, Any], modalities: Sequence[str], budget: Budget, num_classes: int | None = None,
    num_folds: int = 5, measure: Callable[..., list[dict[str, Any]]] = measure_steps, crop_foreground: bool | None = None,
) -> dict[str, Any]:
    """The plans for fingerprint `fp` (see `fingerprint.dataset_fingerprint`) under `budget`."""
    cases = fp["cases"]
    if len(modalities) != fp["num_channels"]:
        raise UserError(f"{len(modalities)} modalities for {fp['num_channels']} image channels "
                        "(give one --modality per channel)")
    in_ch = fp["num_channels"]
    n_cls = int(num_classes or (max(fp["classes"], default=0) + 1))
    if n_cls < 2:
        raise UserError("the labels hold no foreground class (every label is 0)")
    spacings = [c["spacing"] for c in cases]
    crop_fracs = [c["crop_fraction"] for c in cases]
    crop = bool(np.median(crop_fracs) < 0.95) if crop_foreground is None else bool(crop_foreground)
    shapes = [c["crop_shape"] if crop else c["shape"] for c in cases]
    spacing = rules.target_spacing(spacings, shapes)
    resample = any(not np.allclose(s, spacing, rtol=0.01) for s in spacings)
    resampled = [[round(n * s / t) for n, s, t in zip(sh, sp, spacing)] for sh, sp in zip(shapes, spacings)]
    median_shape = [int(v) for v in np.median(np.asarray(resampled), axis=0)]
    nonzero = rules.use_nonzero_mask(crop_fracs)
    norms = [rules.normalization(m, st, nonzero) for m, st in zip(modalities, fp["foreground_intensity"])]
    if in_ch > 1 and any(n["scheme"] == "CTNormalization" for n in norms):
        raise UserError("multi-channel CT is not supported yet (one CT window per config): plan one channel")
    schemes = {n["scheme"] for n in norms}
    if len(schemes) > 1:
        raise UserError(f"mixed normalisation schemes across channels ({sorted(schemes)}, modalities "
                        f"{list(modalities)}) are not supported yet: plan CT and non-CT channels separately")

    precision = training_precision(budget)
    meter = _Meter(budget, measure, precision)
    n_train = max(1, len(cases) - int(np.ceil(len(cases) / num_folds)))
    dataset_voxels = float(sum(np.prod(s) for s in resampled)) * in_ch

    timed = budget.kind == "cpu" and bool(budget.time_s) and budget.min_iterations > 0
    min_iterations = budget.min_iterations

    def fits(p: list[int], batch: int = 2) -> bool:
        p, args = _topology(spacing, p, budget, in_ch, n_cls)
        if len(args["strides"]) < MIN_LEVELS:  # DynUnet needs 3 levels; a smaller patch would not have them
            return False
        max_s = 0.9 * budget.time_s / min_iterations if timed else float("inf")
        mem, sec = meter.estimate(args, p, batch)
        ok = mem <= budget.memory_bytes and sec <= max_s
        logger.debug("patch %s batch %d: ~%.0f MiB, ~%.2f s/step -> %s", p, batch, mem / 2**20, sec, ok)
        return ok

    while True:
        try:
            patch = rules.fit_patch_size(spacing, median_shape, fits, edge=budget.edge)
            break
        except rules.NoFitError as exc:
            if not timed or min_iterations <= 1:
                raise UserError(f"{exc} (budget {budget.name}: {budget.memory_bytes / GIB:.2f} GiB)") from None
            min_iterations = max(1, min_iterations // 2)  # too short a budget: fewer steps, smallest patches first
            logger.warning("no patch allows enough training steps in %.0f s; trying %d steps",
                           budget.time_s, min_iterations)
    patch, args = _topology(spacing, patch, budget, in_ch, n_cls)
    res = meter.at(args, patch, 2)  # measured at the minimum batch, then batch filled from it
    for _ in range(10):  # the linear estimate may be low: shrink until the measurement fits
        if res["peak_bytes"] <= budget.memory_bytes:
            break
        patch, args = _topology(spacing, rules.reduce_patch_axis(patch, median_shape, spacing), budget, in_ch, n_cls)
        res = meter.at(args, patch, 2)
    fixed = 4.0 * res["param_bytes"]  # parameters, gradients and Adam's two moments do not grow with the batch
    per_sample_mem = max(res["peak_bytes"] - fixed, 1.0) / 2
    batch = rules.batch_size_for(budget.memory_bytes, fixed, per_sample_mem, dataset_voxels, patch)
    if timed:  # keep the step within the time rule
        _, sec2 = meter.estimate(args, patch, 2)
        batch = max(2, min(batch, int(2 * 0.9 * budget.time_s / min_iterations / max(sec2, 1e-9))))
    if batch != 2:
        res = meter.at(args, patch, batch)
    length = rules.training_length(n_train, res["step_seconds"], budget.time_s if budget.kind == "cpu" else None)
    mirror = rules.mirror_axes(len(spacing))
    if budget.kind == "cpu":
        optim = {"name": "Adam", "learning_rate": 3e-3, "args": {}}
        lr_policy = {"name": "ReduceCosine", "args": {"rate": 0.5}}
    else:
        optim = {"name": "SGD", "learning_rate": 1e-2,
                 "args": {"momentum": 0.99, "nesterov": True, "weight_decay": 3e-5}}
        lr_policy = {"name": "ReducePoly", "args": {"poly_power": 0.9}}
    return {
        "version": 1,
        "budget": asdict(budget),
        "modalities": list(modalities),
        "num_input_channels": in_ch,
        "num_classes": n_cls,
        "target_spacing": spacing,
        "resample": resample,
        "median_shape": median_shape,
        "crop_foreground": {"enabled": crop, "source": "image", "mode": "nonzero",
                            "median_fraction": float(np.median(crop_fracs))},
        "normalization": norms,
        "patch_size": patch,
        "batch_size": int(batch),
        "sampling": rules.foreground_sampling(),
        "network": {"name": "DynUnet", "kernel_size": args["kernel_size"], "strides": args["strides"],
                    "filters": args["filters"], "norm_name": "instance",
                    "deep_supervision": args["deep_supervision"], "deep_supr_num": args["deep_supr_num"]},
        "memory": {"budget_bytes": budget.memory_bytes, "measured_peak_bytes": res["peak_bytes"],
                   "step_seconds": res["step_seconds"], "device": res["device"], "measurements": meter.runs},
        "augmentations": rules.augmentations(budget.kind, spacing),
        "mirror_axes": mirror,
        "tta": budget.kind != "cpu",
        "training": {**length, "optimizer": optim, "lr_policy": lr_policy, "precision": precision,
                     "loss": {"name": "CrossEntropyDice", "args": {"skip_background": True}},
                     "iterations_per_epoch": n_train},
        "folds": num_folds,
        "rules": {
            "target_spacing": "rules.target_spacing (nnU-Net determine_fullres_target_spacing)",
            "crop_foreground": "nnU-Net crop_to_nonzero (from the image alone)",
            "normalization": "rules.normalization / use_nonzero_mask (nnU-Net CTNormalization, ZScoreNormalization)",
            "patch_size": "rules.fit_patch_size / reduce_patch_axis (nnU-Net get_plans_for_configuration), measured",
            "batch_size": "rules.batch_size_for (nnU-Net: budget, 5% dataset cap, min 2), measured",
            "network": "rules.pool_and_conv_props, features_per_stage, deep_supervision (nnU-Net topology)",
            "augmentations": "rules.augmentations (nnU-Net get_training_transforms; lighter on cpu)",
            "sampling": "rules.foreground_sampling (nnU-Net oversample_foreground_percent 0.33)",
            "mirror_axes": "rules.mirror_axes (nnU-Net mirroring + test-time mirroring)",
            "training": "rules.training_length (nnU-Net 1000 x 250 iterations; cpu: the measured steps that fit)",
            "precision": "planner.training_precision (nnU-Net trains with autocast; use_amp's auto, measured)",
        },
    }
