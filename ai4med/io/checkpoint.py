"""Reading checkpoint files: one reader, one set of rules, for training and inference alike.

`torch.load` with `weights_only=False` unpickles arbitrary objects, so a checkpoint downloaded
from anywhere could run code on load. Every checkpoint is therefore read with
`weights_only=True` (tensors, containers and plain numbers only). A legacy checkpoint that needs
the full pickle is refused with a message naming the file and the opt-in that trusts it:
`--trust_checkpoint` on the command line, or `AI4MED_TRUST_CHECKPOINTS=1` in the environment.

Accepted layouts (first match): `{"model": sd}` (ai4med, Clara), `{"state_dict": sd}` (Lightning),
`{"model_state_dict": sd}`, `{"net": sd}`, or a bare state_dict; the prefixes `module.` (DDP) and
`_orig_mod.` (torch.compile) are stripped.

Example:
    >>> import os, tempfile, torch
    >>> p = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> torch.save({"state_dict": {"module.w": torch.ones(1)}}, p)
    >>> list(read_state_dict(p))
    ['w']
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ai4med.errors import UserError

__all__ = ["CheckpointError", "read_checkpoint", "read_state_dict", "state_dict_of", "load_weights",
           "trusted_by_environment", "TRUST_ENV", "STATE_KEYS"]

TRUST_ENV = "AI4MED_TRUST_CHECKPOINTS"
STATE_KEYS = ("model", "state_dict", "model_state_dict", "net")
_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not fit; the message names the file."""


def trusted_by_environment() -> bool:
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def read_checkpoint(path: str | os.PathLike[str], trust: bool = False) -> Any:
    """The object saved in `path`, read with `weights_only=True` unless `trust` (or the environment) says
    the file may be unpickled in full."""
    import pickle

    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    full = trust or trusted_by_environment()
    try:
        return torch.load(path, map_location="cpu", weights_only=not full)
    except pickle.UnpicklingError as exc:
        if full:
            raise CheckpointError(f"{path}: not a readable checkpoint: {exc}") from exc
        raise CheckpointError(
            f"{path}: this checkpoint holds Python objects beyond tensors and numbers, which can run code "
            f"when loaded, so it was not read. If you trust the file, pass --trust_checkpoint (or set "
            f"{TRUST_ENV}=1); better, re-save its state_dict: torch.save({{'model': model.state_dict()}}, path)."
            f" ({str(exc).splitlines()[0][:200]})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint: {str(exc).splitlines()[0][:300]}") from None


def state_dict_of(obj: Any, path: str = "checkpoint") -> dict[str, Any]:
    """The network weights inside a loaded checkpoint (see the module docstring for the layouts)."""
    state = obj
    if isinstance(state, Mapping):
        for key in STATE_KEYS:
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path}: holds no state_dict (looked for the keys {', '.join(STATE_KEYS)} "
                              "and for a bare state_dict)")
    out = {}
    for k, v in state.items():
        key = str(k)
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = v
    return out


def read_state_dict(path: str | os.PathLike[str], trust: bool = False) -> dict[str, Any]:
    """The network weights of a checkpoint file."""
    return state_dict_of(read_checkpoint(path, trust), os.fspath(path))


def load_weights(module: Any, path: str | os.PathLike[str], trust: bool = False) -> dict[str, Any]:
    """Load the checkpoint's weights into `module` (strict); returns the whole checkpoint object
    (a dict; {} for a bare state_dict). A mismatch is a CheckpointError naming the file."""
    obj = read_checkpoint(path, trust)
    weights = state_dict_of(obj, os.fspath(path))
    target = getattr(module, "module", module)  # DistributedDataParallel
    try:
        target.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{os.fspath(path)}: the weights do not fit the network "
                              f"{type(target).__name__}: {str(exc)[:600]}") from None
    return dict(obj) if isinstance(obj, Mapping) and weights is not obj else {}
