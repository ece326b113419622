"""TrainStep: one seed-shaped supervised training iteration.

It fills a `BuildContext`, calls `model.get_predictions` and `loss.get_loss`
(+ `model.get_loss()`), steps the optimizer and runs the aux-ops. The trainer and the
benchmarks use the same object, so what is measured is what users run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ai4med.common.build_ctx import BuildContext
from ai4med.components.inferers.precision import autocast
from ai4med.components.models.conv_layout import channels_last_format
from ai4med.components.models.dynunet import deep_supervision_weights


def to_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """Convolution weights in channels-last memory format, in place (2D and 3D layers alike).

    Only strides change: values, parameter objects and state_dict keys stay as they are."""
    torch.nn.utils.convert_conv3d_weight_memory_format(module, torch.channels_last_3d)
    torch.nn.utils.convert_conv2d_weight_memory_format(module, torch.channels_last)
    return module


class TrainStep:
    """Callable `(engine, batch) -> {"loss": float, "aux": {name: float}}`.

    Args:
        model: the seed `Model` (its `get_predictions` applies the final activation).
        module: the model's `nn.Module` (what the optimizer updates).
        loss / optimizer: built components (`get_loss`, a torch optimizer).
        device / precision: where and how ("fp32", "bf16", "fp16" autocast) to run.
        aux_ops: aux-ops run after the update, without gradients.
        lr_policy: a step-triggered LR policy applied before each iteration (or None).
        train_module: the module that must see the forward call (a DDP wrapper), if any.
        channels_last: True: give 4-D/5-D images channels-last memory format (pair with
            `to_channels_last` on the module; a model with `data_format="channels_last"` already gets
            that layout). "auto": on the first call, time each convolution in both layouts on the real
            batch and run the ones where channels-last wins channels-last (`conv_layout`).
    """

    def __init__(self, model: Any, module: torch.nn.Module, loss: Any, optimizer: torch.optim.Optimizer,
                 device: torch.device, precision: str = "fp32", aux_ops: Sequence[Any] = (),
                 lr_policy: Any = None, total_epochs: int | None = None,
                 train_module: torch.nn.Module | None = None, channels_last: bool | str = False) -> None:
        self.model, self.module, self.loss, self.optimizer = model, module, loss, optimizer
        self.device, self.precision = torch.device(device), precision
        self.aux_ops = list(aux_ops)
        self.lr_policy = lr_policy
        self.total_epochs = total_epochs
        self.train_module = train_module if train_module is not None else module
        self.tune_layouts = channels_last == "auto"
        self.channels_last = (channels_last is True
                              and getattr(model, "data_format", "channels_first") != "channels_last")
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None

    def __call__(self, engine: Any, batch: dict[str, Any]) -> dict[str, Any]:
        state = engine.state
        if self.lr_policy is not None:
            self.lr_policy.apply(self.optimizer, step=state.iteration, epoch=state.epoch,
                                 total_epochs=self.total_epochs)
        self.train_module.train()
        if self.tune_layouts:
            self.tune_layouts = False
            self._tune_on_first_forward()
        x = batch["image"].to(self.device, non_blocking=True)
        if self.channels_last and channels_last_format(x.ndim) is not None:
            x = x.contiguous(memory_format=channels_last_format(x.ndim))
        y = batch["label"].to(self.device, non_blocking=True) if "label" in batch else None
        ctx = BuildContext({
            BuildContext.KEY_MODEL_INPUT: x, BuildContext.KEY_LABEL_INPUT: y, BuildContext.KEY_IS_TRAIN: True,
            BuildContext.KEY_LEARNING_RATE: self.optimizer.param_groups[0]["lr"],
            BuildContext.KEY_GLOBAL_STEP: state.iteration, BuildContext.KEY_EPOCH: state.epoch,
            BuildContext.KEY_DATA_PROP: {"num_channels": x.shape[1], "batch_size": x.shape[0]},
            BuildContext.KEY_DEVICE: self.device,
        })
        with autocast(self.precision, self.device):
            preds = self._predict(x, ctx)
        preds = preds.float()
        ctx.set(BuildContext.KEY_PREDICTIONS, preds)
        loss = self._supervised_loss(preds, y, ctx)
        extra = self.model.get_loss()
        if torch.is_tensor(extra) or extra:
            loss = loss + extra
        ctx.set(BuildContext.KEY_LOSS, loss)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        aux: dict[str, float] = {}
        for op in self.aux_ops:
            for k, v in op.build(ctx).items():
                if torch.is_tensor(v) and v.numel() == 1:
                    aux[k] = float(v)
        return {"loss": float(loss.detach()), "aux": aux}

    def _tune_on_first_forward(self) -> None:
        """Time the convolutions' layouts on the network's real first input (after the model's own
        input handling), inside this step's autocast, then let the forward go on."""
        from ai4med.components.models.conv_layout import tune_conv_layouts

        def tune(_module: torch.nn.Module, args: tuple) -> None:
            handle.remove()
            if args and torch.is_tensor(args[0]) and args[0].ndim in (4, 5):
                tune_conv_layouts(self.module, args[0].detach(), backward=True,
                                  amp=lambda: autocast(self.precision, self.device))

        handle = self.module.register_forward_pre_hook(tune)

    def _supervised_loss(self, preds: torch.Tensor, y: Any, ctx: BuildContext) -> torch.Tensor:
        """The configured loss; with deep supervision (a model offering `deep_supervision_predictions`,
        e.g. DynUnet), the same loss on every extra head too, weighted as nnU-Net does."""
        main = self.loss.get_loss(preds, y, ctx)
        take_heads = getattr(self.model, "deep_supervision_predictions", None)
        heads = take_heads() if callable(take_heads) else []
        if not heads:
            return main
        weights = deep_supervision_weights(len(heads))
        loss = weights[0] * main
        for w, head in zip(weights[1:], heads):
            loss = loss + w * self.loss.get_loss(head.float(), y, ctx)
        return loss

    def _predict(self, x: torch.Tensor, ctx: BuildContext) -> torch.Tensor:
        """Seed-style `get_predictions`; under DDP the wrapped module stands in for the network
        during the call, so gradients are synchronised and the model's own head still applies."""
        attr = next((a for a in ("net", "model", "network") if getattr(self.model, a, None) is self.module), None)
        if self.train_module is self.module or attr is None:
            return self.model.get_predictions(x, True, ctx)
        setattr(self.model, attr, self.train_module)
        try:
            return self.model.get_predictions(x, True, ctx)
        finally:
            setattr(self.model, attr, self.module)
