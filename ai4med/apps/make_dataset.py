"""`ai4med make-dataset`: write a synthetic or MNI152 dataset with its datalist."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    if args.task == "synthetic":
        from ai4med.datasets.synthetic import make_synthetic_dataset

        path = make_synthetic_dataset(args.output, num_cases=args.cases, size=args.size, seed=args.seed)
    else:
        from ai4med.datasets.mni152 import make_mni152_dataset

        path = make_mni152_dataset(args.output, num_cases=args.cases, seed=args.seed)
    print(f"datalist: {path}")
    return 0
