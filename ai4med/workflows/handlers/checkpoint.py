"""CheckpointHandler: best and final model weights plus a resumable training state.

Every file is written to a temporary name in the same folder and renamed into place,
so a run killed at any moment (even kill -9) leaves either the previous complete file
or the new complete file, never a truncated one.

Files in `ckpt_dir`:
    model.pt            weights of the best epoch by the key metric (Clara's `model.ckpt`)
    final_model.pt      weights after the last epoch
    last_checkpoint.pt  model + optimizer + scheduler + engine state + RNG states + the
                        run's `state.extra["persist"]` values (for --resume)
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import torch

from ai4med.io.atomic import atomic_path, remove_stale_temporaries
from ai4med.io.checkpoint import load_weights, read_checkpoint
from ai4med.workflows.engine import Engine, Events

__all__ = ["CheckpointHandler", "atomic_torch_save", "rng_states", "restore_rng_states", "load_weights",
           "BEST_NAME", "FINAL_NAME", "LAST_NAME"]

logger = logging.getLogger(__name__)

BEST_NAME = "model.pt"
FINAL_NAME = "final_model.pt"
LAST_NAME = "last_checkpoint.pt"


def atomic_torch_save(obj: Any, path: str) -> None:
    """torch.save through a temporary file + fsync + rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())


def rng_states() -> dict[str, Any]:
    """The global RNG states, in types `torch.load(weights_only=True)` reads (no numpy objects)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                   float(cached)]
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(_as_tuple(states["python"]))
    name, keys, pos, has_gauss, cached = states["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((name, keys.astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(states["torch"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _plain(value: Any) -> Any:
    """Metric values as plain Python numbers (numpy scalars are not weights-only loadable)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class CheckpointHandler:
    """Saves `last_checkpoint.pt` every `save_every` epochs, `model.pt` on a new best key
    metric, and `final_model.pt` at the end.

    Args:
        ckpt_dir: folder for the files (Clara's MMAR_CKPT_DIR).
        module: the network (its state_dict is saved).
        optimizer / scheduler: saved in the resumable checkpoint (scheduler optional).
        save_every: epochs between resumable checkpoints.
    """

    def __init__(self, ckpt_dir: str, module: torch.nn.Module, optimizer: Any = None, scheduler: Any = None,
                 save_every: int = 1, trust: bool = False) -> None:
        self.ckpt_dir = ckpt_dir
        self.trust = bool(trust)
        self.module = module
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.save_every = max(1, save_every)
        os.makedirs(ckpt_dir, exist_ok=True)
        remove_stale_temporaries(ckpt_dir)  # `.tmp-*` of a run killed during a save

    def attach(self, engine: Engine) -> None:
        engine.add_handler(Events.EPOCH_COMPLETED, self.on_epoch_completed, name="checkpoint")
        engine.add_handler(Events.COMPLETED, self.on_completed, name="checkpoint-final")

    def _weights(self, engine: Engine) -> dict[str, Any]:
        return {"model": _unwrap(self.module).state_dict(), "epoch": engine.state.epoch,
                "metrics": _plain(dict(engine.state.metrics))}

    def on_epoch_completed(self, engine: Engine) -> None:
        if engine.state.extra.pop("new_best", False):
            atomic_torch_save(self._weights(engine), os.path.join(self.ckpt_dir, BEST_NAME))
            logger.info("epoch %d: new best key metric %.4f, saved %s", engine.state.epoch,
                        engine.state.best_metric, BEST_NAME)
        if engine.state.epoch % self.save_every == 0 or engine.state.epoch == engine.state.max_epochs:
            self.save_resumable(engine)

    def on_completed(self, engine: Engine) -> None:
        atomic_torch_save(self._weights(engine), os.path.join(self.ckpt_dir, FINAL_NAME))
        if not os.path.exists(os.path.join(self.ckpt_dir, BEST_NAME)):  # no validation ran: final is best
            atomic_torch_save(self._weights(engine), os.path.join(self.ckpt_dir, BEST_NAME))

    def save_resumable(self, engine: Engine) -> None:
        s = engine.state
        state = {
            "model": _unwrap(self.module).state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": self.scheduler.state_dict() if hasattr(self.scheduler, "state_dict") else None,
            "engine": _plain({"epoch": s.epoch, "iteration": s.iteration, "best_metric": s.best_metric,
                              "best_epoch": s.best_epoch, "metrics": dict(s.metrics)}),
            "rng": rng_states(),
            "persist": _plain(dict(s.extra.get("persist", {}))),  # e.g. the data pipeline's seed
        }
        atomic_torch_save(state, os.path.join(self.ckpt_dir, LAST_NAME))

    def resume(self, engine: Engine) -> bool:
        """Load `last_checkpoint.pt` into the module/optimizer/engine; False if there is none."""
        path = os.path.join(self.ckpt_dir, LAST_NAME)
        if not os.path.exists(path):
            return False
        state = read_checkpoint(path, self.trust)
        _unwrap(self.module).load_state_dict(state["model"])
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None and hasattr(self.scheduler, "load_state_dict"):
            self.scheduler.load_state_dict(state["scheduler"])
        e = state["engine"]
        engine.state.epoch, engine.state.iteration = e["epoch"], e["iteration"]
        engine.state.best_metric, engine.state.best_epoch = e["best_metric"], e["best_epoch"]
        engine.state.metrics = dict(e["metrics"])
        restore_rng_states(state["rng"])
        engine.state.extra.setdefault("persist", {}).update(state.get("persist", {}))
        logger.info("resumed from %s at epoch %d (iteration %d)", path, e["epoch"], e["iteration"])
        return True


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)  # DistributedDataParallel
