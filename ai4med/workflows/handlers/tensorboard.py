"""TensorBoardHandler: scalars (loss, LR, metrics, aux-ops) and image slices."""

from __future__ import annotations

from typing import Any

from ai4med.workflows.engine import Engine, Events


class TensorBoardHandler:
    """Writes `state.metrics` each epoch and the step loss every `interval` iterations.

    Args:
        log_dir: event-file folder (the MMAR's models/ folder by default).
        interval: iterations between step scalars (Clara's train_summary_recording_interval;
            0 = per epoch only).
    """

    def __init__(self, log_dir: str, interval: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=log_dir)
        self.interval = interval

    def attach(self, engine: Engine) -> None:
        if self.interval:
            engine.add_handler(Events.ITERATION_COMPLETED, self._step, every=self.interval, name="tensorboard")
        engine.add_handler(Events.EPOCH_COMPLETED, self._epoch, name="tensorboard")
        engine.add_handler(Events.COMPLETED, lambda e: self.writer.close(), name="tensorboard-close")

    def _step(self, engine: Engine) -> None:
        out = engine.state.output
        loss = out.get("loss") if isinstance(out, dict) else out
        if loss is not None:
            self.writer.add_scalar("step/loss", float(loss), engine.state.iteration)
        for k, v in (out.get("aux", {}) if isinstance(out, dict) else {}).items():
            self.writer.add_scalar(f"step/{k}", float(v), engine.state.iteration)

    def _epoch(self, engine: Engine) -> None:
        for name, value in engine.state.metrics.items():
            self.writer.add_scalar(f"epoch/{name}", float(value), engine.state.epoch)
        for tag, image in engine.state.extra.pop("tb_images", {}).items():
            self.writer.add_image(tag, image, engine.state.epoch, dataformats="HWC")
        self.writer.flush()

    def add_scalar(self, tag: str, value: Any, step: int) -> None:
        self.writer.add_scalar(tag, float(value), step)
