"""`ai4med check-datalist`: validate a datalist and every file it names, before any work starts.

Example:
    >>> import argparse, json, os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> open(os.path.join(folder, "a.nii.gz"), "wb").close()
    >>> with open(os.path.join(folder, "dl.json"), "w") as f:
    ...     json.dump({"training": [{"image": "a.nii.gz"}], "test": ["a.nii.gz"]}, f)
    >>> run(argparse.Namespace(datalist=os.path.join(folder, "dl.json"), file_root=None, key=None))
    training: 1 item, 1 file, all present
    test: 1 item, 1 file, all present
    0
"""

from __future__ import annotations

import argparse
from typing import Any


def _count_files(item: dict[str, Any]) -> int:
    n = 0
    for v in item.values():
        if isinstance(v, str):
            n += 1
        elif isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            n += len(v)
    return n


def run(args: argparse.Namespace) -> int:
    """Print one summary line per list of the datalist, or raise DatalistError listing every problem."""
    from ai4med.io.datalist import load_datalists

    keys = [args.key] if getattr(args, "key", None) else None
    lists = load_datalists(args.datalist, keys=keys, base_dir=getattr(args, "file_root", None))
    for key, items in lists.items():
        files = sum(_count_files(item) for item in items)
        print(
            f"{key}: {len(items)} item{'s' if len(items) != 1 else ''}, "
            f"{files} file{'s' if files != 1 else ''}, all present"
        )
    return 0
