"""CheckpointHandler: best and final model weights plus a resumable training state.

Every file is written to a temporary name in the same folder and renamed into place,
so a run killed at any moment (even kill -9) leaves either the previous complete file
or the new complete file, never a truncated one.

Files in `ckpt_dir`:
    model.pt            weights of the best epoch by the key metric (Clara's `model.ckpt`)
    final_model.pt      weights after the last epoch
    last_checkpoint.pt  model + optimizer + scheduler + engine state (mid-epoch position
                        included) + RNG states + the run's `state.extra["persist"]` values
                        (for --resume)
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
    """Saves `last_checkpoint.pt` every `save_every` epochs (or `every_iterations` iterations),
    at the end of training and with each new best; `model.pt` on a new best key metric;
    `final_model.pt` at the end.

    Args:
        ckpt_dir: folder for the files (Clara's MMAR_CKPT_DIR).
        module: the network (its state_dict is saved).
        optimizer / scheduler: saved in the resumable checkpoint (scheduler optional).
        save_every: epochs between resumable checkpoints (0: none between the ones at the end
            and on improvements).
        every_iterations: iterations between resumable checkpoints (0: by epochs); a mid-epoch
            checkpoint resumes mid-epoch (`State.resume_epoch_iteration`).
    """

    def __init__(self, ckpt_dir: str, module: torch.nn.Module, optimizer: Any = None, scheduler: Any = None,
                 save_every: int = 1, every_iterations: int = 0, trust: bool = False) -> None:
        self.ckpt_dir = ckpt_dir
        self.trust = bool(trust)
        self.module = module
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.save_every = max(0, int(save_every))
        self.every_iterations = max(0, int(every_iterations))
        self._saved: tuple[int, int, bool] | None = None  # (epoch, iteration, in_epoch) of the last save
        self._resumable_due = False  # a new best at an epoch's end: save the resumable state at its end
        os.makedirs(ckpt_dir, exist_ok=True)
        remove_stale_temporaries(ckpt_dir)  # `.tmp-*` of a run killed during a save

    def attach(self, engine: Engine) -> None:
        engine.add_handler(Events.VALIDATION_COMPLETED, self.on_validation, name="checkpoint-best")
        if self.every_iterations:
            engine.add_handler(Events.ITERATION_COMPLETED, self.on_iteration_completed, name="checkpoint")
        engine.add_handler(Events.EPOCH_COMPLETED, self.on_epoch_completed, name="checkpoint")
        engine.add_handler(Events.COMPLETED, self.on_completed, name="checkpoint-final")

    def _weights(self, engine: Engine) -> dict[str, Any]:
        return {"model": _unwrap(self.module).state_dict(), "epoch": engine.state.epoch,
                "iteration": engine.state.iteration, "metrics": _plain(dict(engine.state.metrics))}

    def _save_best(self, engine: Engine) -> None:
        if engine.state.extra.pop("new_best", False):
            weights = self._weights(engine)
            weights["epoch"] = engine.state.best_epoch
            atomic_torch_save(weights, os.path.join(self.ckpt_dir, BEST_NAME))
            logger.info("epoch %d (iteration %d): new best key metric %.4f, saved %s", engine.state.best_epoch,
                        engine.state.iteration, engine.state.best_metric, BEST_NAME)
            # a resume continues from the best weights' state. At an epoch's end the resumable save waits for
            # this handler's EPOCH_COMPLETED, after the epoch's history is written: a checkpoint that is newer
            # than the history would make a resumed run's history skip the epoch
            if engine.state.in_epoch:
                self.save_resumable(engine)
            else:
                self._resumable_due = True

    def on_validation(self, engine: Engine) -> None:
        self._save_best(engine)

    def on_iteration_completed(self, engine: Engine) -> None:
        if engine.state.iteration % self.every_iterations == 0:
            self.save_resumable(engine)

    def on_epoch_completed(self, engine: Engine) -> None:
        s = engine.state
        self._save_best(engine)  # a new_best flagged by a handler that fires no VALIDATION_COMPLETED
        periodic = not self.every_iterations and self.save_every and s.epoch % self.save_every == 0
        if periodic or self._resumable_due or s.epoch == s.max_epochs or engine.budget_spent():
            self.save_resumable(engine)
        self._resumable_due = False

    def on_completed(self, engine: Engine) -> None:
        self.save_resumable(engine)  # the end of training (mid-epoch when the budget ended there)
        atomic_torch_save(self._weights(engine), os.path.join(self.ckpt_dir, FINAL_NAME))
        if not os.path.exists(os.path.join(self.ckpt_dir, BEST_NAME)):  # no validation ran: final is best
            atomic_torch_save(self._weights(engine), os.path.join(self.ckpt_dir, BEST_NAME))

    def save_resumable(self, engine: Engine) -> None:
        s = engine.state
        at = (s.epoch, s.iteration, s.in_epoch)
        if at == self._saved:  # already saved this state (e.g. a new best at a periodic save)
            return
        self._saved = at
        state = {
            "model": _unwrap(self.module).state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": self.scheduler.state_dict() if hasattr(self.scheduler, "state_dict") else None,
            "engine": _plain({"epoch": s.epoch, "iteration": s.iteration, "best_metric": s.best_metric,
                              "best_epoch": s.best_epoch, "metrics": dict(s.metrics),
                              "epoch_iteration": s.epoch_iteration if s.in_epoch else 0}),
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
        engine.state.resume_epoch_iteration = int(e.get("epoch_iteration", 0))
        restore_rng_states(state["rng"])
        engine.state.extra.setdefault("persist", {}).update(state.get("persist", {}))
        logger.info("resumed from %s at epoch %d (iteration %d%s)", path, e["epoch"], e["iteration"],
                    f", {engine.state.resume_epoch_iteration} batches into epoch {e['epoch'] + 1}"
                    if engine.state.resume_epoch_iteration else "")
        return True


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)  # DistributedDataParallel
