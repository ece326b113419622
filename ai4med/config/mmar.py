"""Mmar: the Medical Model ARchive folder layout, its default variables and BYOC imports.

An MMAR is a folder with config/, commands/, models/, eval/, docs/, resources/ and
custom/ (user code, "bring your own components"). Activating an MMAR puts custom/ and
the MMAR root first on `sys.path`, so a config's `"path": "CustomCode.MyLoader"` imports
`custom/CustomCode.py` without setting PYTHONPATH by hand. Only one MMAR is active at a
time: activating another removes the previous one's folders and forgets the modules
imported from them (two MMARs may both have a `CustomCode.py`).

Example:
    >>> import tempfile
    >>> m = Mmar.create(tempfile.mkdtemp())
    >>> sorted(Mmar.FOLDERS) == sorted(p.rsplit("/", 1)[1] for p in m.folders())
    True
"""

from __future__ import annotations

import importlib
import os
import sys

# folders an activation added to sys.path (process-wide: sys.path is process-wide)
_ACTIVE_PATHS: list[str] = []


class Mmar:
    """One MMAR folder.

    Args:
        root: the MMAR folder (made absolute).
    """

    FOLDERS = ("config", "commands", "models", "eval", "docs", "resources", "custom")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))

    @classmethod
    def create(cls, root: str | os.PathLike[str]) -> Mmar:
        """Make the MMAR folder layout under `root` (existing folders are kept)."""
        mmar = cls(root)
        for folder in mmar.folders():
            os.makedirs(folder, exist_ok=True)
        return mmar

    def folders(self) -> list[str]:
        return [os.path.join(self.root, f) for f in self.FOLDERS]

    @property
    def config_dir(self) -> str:
        return os.path.join(self.root, "config")

    @property
    def commands_dir(self) -> str:
        return os.path.join(self.root, "commands")

    @property
    def models_dir(self) -> str:
        return os.path.join(self.root, "models")

    @property
    def eval_dir(self) -> str:
        return os.path.join(self.root, "eval")

    @property
    def docs_dir(self) -> str:
        return os.path.join(self.root, "docs")

    @property
    def resources_dir(self) -> str:
        return os.path.join(self.root, "resources")

    @property
    def custom_dir(self) -> str:
        return os.path.join(self.root, "custom")

    def default_variables(self) -> dict[str, str]:
        """`MMAR_ROOT`, `MMAR_CKPT_DIR` (models/) and `MMAR_EVAL_OUTPUT_PATH` (eval/), absolute."""
        return {
            "MMAR_ROOT": self.root,
            "MMAR_CKPT_DIR": self.models_dir,
            "MMAR_EVAL_OUTPUT_PATH": self.eval_dir,
        }

    def resolve(self, path: str | os.PathLike[str]) -> str:
        """`path` itself if absolute, else relative to the MMAR root."""
        path = os.path.expanduser(os.fspath(path))
        return path if os.path.isabs(path) else os.path.join(self.root, path)

    def sys_paths(self) -> list[str]:
        """What `activate` puts first on sys.path, in order."""
        return [self.custom_dir, self.root]

    def activate(self) -> None:
        """Make `custom/` (then the root) the first places imports look; idempotent."""
        mine = self.sys_paths()
        for old in [p for p in _ACTIVE_PATHS if p not in mine]:
            _forget(old)
        for p in reversed(mine):
            while p in sys.path:
                sys.path.remove(p)
            sys.path.insert(0, p)
            if p not in _ACTIVE_PATHS:
                _ACTIVE_PATHS.append(p)
        importlib.invalidate_caches()  # files written since the last import become visible

    def deactivate(self) -> None:
        """Undo `activate`: remove this MMAR's folders and forget modules imported from them."""
        for p in self.sys_paths():
            if p in _ACTIVE_PATHS:
                _forget(p)

    def __repr__(self) -> str:
        return f"Mmar({self.root!r})"


def _forget(folder: str) -> None:
    """Remove `folder` from sys.path and drop the modules that were imported from it."""
    while folder in sys.path:
        sys.path.remove(folder)
    if folder in _ACTIVE_PATHS:
        _ACTIVE_PATHS.remove(folder)
    tops = [name for name, module in list(sys.modules.items()) if "." not in name and _top_level_in(module, folder)]
    for name in list(sys.modules):
        if name.split(".", 1)[0] in tops:
            del sys.modules[name]


def _top_level_in(module: object, folder: str) -> bool:
    """Whether a top-level module was found directly in `folder` (a .py file or a package)."""
    file = getattr(module, "__file__", None)
    if not file:
        return False
    where = os.path.dirname(os.path.abspath(file))
    if os.path.basename(file).startswith("__init__."):
        where = os.path.dirname(where)
    return where == folder
