"""`ai4med plan`: dataset -> fingerprint -> plans -> a ready-to-train MMAR (see docs/plan.md).

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_plan_args(p)
    >>> a = p.parse_args(["-d", "dataset.json", "-o", "mmar", "--modality", "CT", "--budget", "gpu16"])
    >>> a.datalist, a.modality, a.budget, a.folds
    ('dataset.json', ['CT'], 'gpu16', 5)
"""

from __future__ import annotations

import argparse
import logging
import os

logger = logging.getLogger("ai4med.plan")


def add_plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--datalist", default=None,
                   help="MSD dataset.json or ai4med datalist with labelled 'training' (and 'validation') cases")
    p.add_argument("-o", "--output", required=True, help="MMAR folder to write (config/, commands/, plans/)")
    p.add_argument("--modality", nargs="+", default=None, metavar="MOD",
                   help="modality per image channel, e.g. CT, or MR MR (default: the file's modality/channel_names)")
    p.add_argument("--budget", default="cpu",
                   help="cpu (2 GiB, 1 h on this CPU) or gpu8/gpu11/gpu16/gpu24/gpu40/gpu80 (GPU memory in GiB)")
    p.add_argument("--time-budget-s", dest="time_budget_s", type=float, default=None,
                   help="training wall time for the cpu budget (default 3600): sets the iterations")
    p.add_argument("--memory-gb", dest="memory_gb", type=float, default=None, help="override the budget's memory")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds written into the datalist")
    p.add_argument("--file_root", default=None, help="root of the datalist's relative paths (default: its folder)")
    p.add_argument("--device", default=None, help="where to measure the network (default: the budget's)")
    p.add_argument("--workers", type=int, default=2, help="fingerprint processes (at most 2)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--postprocess", action="store_true",
                   help="after cross-validation: choose per class whether keeping the largest connected component "
                        "raises the CV Dice (reads eval/fold_*/ predictions), write it into the MMAR's configs")


def run(args: argparse.Namespace) -> int:
    from ai4med.errors import UserError
    from ai4med.plan.dataset import read_plan_input
    from ai4med.plan.fingerprint import dataset_fingerprint
    from ai4med.plan.mmar import write_mmar
    from ai4med.plan.planner import make_plans, resolve_budget

    root = os.path.abspath(args.output)
    if args.postprocess:
        from ai4med.plan.postprocess import plan_postprocessing

        result = plan_postprocessing(root)
        print(f"keep-largest-component per class: {result['keep_largest_cc']} (CV Dice {result['dice_before']:.4f} "
              f"-> {result['dice_after']:.4f}); written to {result['written']}")
        return 0
    if not args.datalist:
        raise UserError("give -d DATALIST_OR_DATASET_JSON (or --postprocess on a cross-validated MMAR)")
    if args.folds < 2:
        raise UserError(f"--folds must be >= 2, got {args.folds}")
    data = read_plan_input(args.datalist, args.modality, args.file_root)
    budget = resolve_budget(args.budget, args.memory_gb, args.time_budget_s, args.device)
    os.makedirs(os.path.join(root, "plans"), exist_ok=True)
    fp = dataset_fingerprint(data.cases, os.path.join(root, "plans", "fingerprint_cache.json"),
                             workers=args.workers, progress=not args.no_progress)
    modalities = data.modalities
    if len(modalities) == 1 and fp["num_channels"] > 1:
        modalities = modalities * fp["num_channels"]
    n_cls = max(data.labels) + 1 if data.labels else None
    plans = make_plans(fp, modalities, budget, n_cls, args.folds)
    data_root = os.path.abspath(args.file_root or os.path.dirname(os.path.abspath(args.datalist)))
    files = write_mmar(root, plans, fp, data.cases, data_root, data.labels, data.name)
    if plans["budget"]["kind"] == "cpu" and plans["budget"].get("time_s"):  # a real iteration, data included
        from ai4med.plan.calibrate import iteration_seconds, prefix_seconds, refit_training_length

        prefix_s = prefix_seconds(files["config"], files["environment"], root, data.cases[0])
        iteration_s = iteration_seconds(files["config"], files["environment"], root)
        plans["training"] = refit_training_length(plans, prefix_s, iteration_s,
                                                  plans["training"]["iterations_per_epoch"])
        files = write_mmar(root, plans, fp, data.cases, data_root, data.labels, data.name)
    mem = plans["memory"]
    print(f"planned {len(data.cases)} cases: spacing {plans['target_spacing']}, patch {plans['patch_size']}, "
          f"batch {plans['batch_size']}, {len(plans['network']['strides'])} levels, "
          f"{mem['measured_peak_bytes'] / 2**20:.0f} MiB / {mem['budget_bytes'] / 2**20:.0f} MiB measured, "
          f"{plans['training'].get('iteration_seconds', mem['step_seconds']):.2f} s/iteration, "
          f"{plans['training']['iterations']} iterations")
    print(f"MMAR: {root}\n  config: {files['config']}\n  plans:  {files['plans']}\n"
          f"train:  ai4med train -m {root} --fold 0")
    return 0
