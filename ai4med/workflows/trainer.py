"""The supervised training workflow: a config -> components -> one engine with handlers.

Build order follows seed 002: training pipeline, validation pipeline, model, loss,
optimizer, metrics (+ aux-ops). The step function is seed-shaped: it fills a
`BuildContext`, calls `model.get_predictions`, `loss.get_loss` (+ `model.get_loss()`),
steps the optimizer and runs the aux-ops.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ai4med.config.errors import ConfigError
from ai4med.config.workflow_config import WorkflowConfig
from ai4med.inference.settings import AMP_TYPES, amp_request
from ai4med.workflows import distributed as dist_utils
from ai4med.workflows.engine import Engine, Events
from ai4med.workflows.handlers.checkpoint import CheckpointHandler, load_weights
from ai4med.workflows.handlers.early_stopping import EarlyStopping
from ai4med.workflows.handlers.stats import StatsHandler
from ai4med.workflows.steps import TrainStep, to_channels_last
from ai4med.workflows.validator import PredictionModule, Validator

logger = logging.getLogger("ai4med.train")


@dataclass
class TrainSettings:
    """Clara's top-level globals (config_train.json / environment.json / --set)."""

    epochs: int = 1
    iterations: int = 0  # > 0: the budget is this many iterations (epochs then follow from it)
    num_training_epoch_per_valid: int = 1
    num_training_iterations_per_valid: int = 0  # > 0: validate every N iterations instead
    checkpoint_interval: int | None = None  # epochs (iterations with `iterations`) between resumable checkpoints
    learning_rate: float = 1e-4
    multi_gpu: bool = False
    use_amp: bool | str = False  # true (the machine's mode), or "bf16" / "fp16" to choose the autocast type
    compile: bool = False
    channels_last: bool | str = "auto"  # "auto": per convolution, timed (conv_layout.py); true: whole network
    determinism: dict[str, Any] = field(default_factory=dict)
    train_summary_recording_interval: int = 0
    early_stopping_patience: int | None = None
    log_every: int = 0

    @classmethod
    def from_config(cls, cfg: WorkflowConfig) -> TrainSettings:
        def get(key: str, default: Any) -> Any:
            return cfg.get("/" + key, cfg.variables.get(key, default))

        s = cls(
            epochs=int(get("epochs", 1)),
            iterations=_count(get("iterations", 0), "iterations", cfg),
            num_training_epoch_per_valid=int(get("num_training_epoch_per_valid", 1)),
            num_training_iterations_per_valid=_count(get("num_training_iterations_per_valid", 0),
                                                     "num_training_iterations_per_valid", cfg),
            checkpoint_interval=(None if get("checkpoint_interval", None) is None
                                 else _count(get("checkpoint_interval", None), "checkpoint_interval", cfg)),
            learning_rate=float(get("learning_rate", 1e-4)),
            multi_gpu=_as_bool(get("multi_gpu", False)),
            use_amp=_amp_setting(get("use_amp", False), cfg),
            compile=_as_bool(get("compile", False)),
            channels_last=_layout_setting(get("channels_last", "auto"), cfg),
            determinism=dict(get("determinism", {}) or {}),
            train_summary_recording_interval=int(get("train_summary_recording_interval", 0)),
            early_stopping_patience=get("early_stopping_patience", None),
            log_every=int(get("log_every", 0)),
        )
        if s.epochs < 1 and not s.iterations:
            raise ConfigError(f"epochs must be >= 1, got {s.epochs}", cfg.file, "/epochs")
        if s.iterations and get("epochs", None) is not None:  # e.g. --set epochs=5 on a planned MMAR
            logger.warning("%s: epochs=%s is ignored: the iterations budget (%d) sets the training length "
                           "(--set iterations=N to change it)", cfg.file, get("epochs", None), s.iterations)
        return s


def _count(v: Any, key: str, cfg: WorkflowConfig) -> int:
    """A non-negative whole number setting (iterations, intervals); a clear error otherwise."""
    try:
        n = int(v) if not isinstance(v, bool) and float(v) == int(float(v)) else None
    except (TypeError, ValueError):
        n = None
    if n is None or n < 0:
        raise ConfigError(f"{key} must be a whole number >= 0, got {v!r}", cfg.file, f"/{key}")
    return n


def _amp_setting(v: Any, cfg: WorkflowConfig) -> bool | str:
    """`use_amp`: a boolean (true: the machine's mode, see `_amp_precision`) or "bf16" / "fp16"."""
    request = amp_request(v)
    if request is None:
        raise ConfigError(f"use_amp must be true, false, \"bf16\" or \"fp16\", got {v!r}", cfg.file, "/use_amp")
    return request if request in AMP_TYPES else request == "auto"


def _layout_setting(v: Any, cfg: WorkflowConfig) -> bool | str:
    """`channels_last`: "auto" (each convolution in the layout that times faster here), true (the
    whole network channels-last) or false (channels-first throughout)."""
    if isinstance(v, str) and v.strip().lower() == "auto":
        return "auto"
    if isinstance(v, bool) or (isinstance(v, str) and v.strip().lower() in _TRUE_WORDS + _FALSE_WORDS):
        return _as_bool(v)
    raise ConfigError(f"channels_last must be \"auto\", true or false, got {v!r}", cfg.file, "/channels_last")


_TRUE_WORDS, _FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _as_bool(v: Any) -> bool:
    return v if isinstance(v, bool) else str(v).strip().lower() in _TRUE_WORDS


def seed_everything(determinism: dict[str, Any]) -> int | None:
    """Apply Clara's `determinism` block; returns the seed for the data pipelines."""
    if not determinism:
        return None
    seed = int(determinism.get("random_seed", determinism.get("torch_seed", 0)))
    random.seed(seed)
    np.random.seed(int(determinism.get("numpy_seed", seed)))
    torch.manual_seed(int(determinism.get("torch_seed", determinism.get("tf_seed", seed))))
    return seed


def _amp_precision(use_amp: bool | str, device: torch.device) -> str:
    """true -> bf16 autocast on AMX CPUs, fp16 (+ GradScaler) on GPUs, fp32 elsewhere; "bf16" /
    "fp16" -> that autocast type wherever it runs (bf16 on GPUs from Ampere on; on CPUs without AMX
    it is emulated and slower than fp32)."""
    from ai4med.components.inferers.precision import resolve_precision

    return resolve_precision(amp_request(use_amp) or "fp32", device)


def compile_module(module: torch.nn.Module, device: torch.device, cfg: WorkflowConfig) -> None:
    """`module.compile()` in place (the `compile` global): the state_dict keys stay those of the
    plain network, so checkpoints, resume, fine-tuning and export are unchanged. Raises a
    ConfigError naming the key when torch.compile cannot work here."""
    def fail(why: str) -> ConfigError:
        return ConfigError(f"compile=true, but torch.compile {why}; set compile=false", cfg.file, "/compile")

    if not callable(getattr(module, "compile", None)):
        raise fail(f"is not available in torch {torch.__version__}")
    try:
        from torch import _dynamo

        supported = _dynamo.is_dynamo_supported()
    except Exception as e:  # noqa: BLE001 - any import failure means no compiler
        raise fail(f"cannot be imported ({type(e).__name__}: {e})") from e
    if not supported:
        raise fail("is not supported on this Python/platform")
    backend = torch.compiler.get_default_backend() if hasattr(torch.compiler, "get_default_backend") else "inductor"
    if backend == "inductor":  # its code generators need a C++ compiler (CPU) or Triton (GPU)
        _check_inductor(device, fail)
    try:
        module.compile()
    except Exception as e:  # noqa: BLE001
        raise fail(f"failed ({type(e).__name__}: {e})") from e
    logger.info("compile: the network is compiled with torch.compile on the first training step "
                "(and again for validation); that step takes a while")


def _check_inductor(device: torch.device, fail: Callable[[str], ConfigError]) -> None:
    if device.type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return
        if not has_triton():
            raise fail("needs Triton for CUDA devices (pip install triton)")
    elif device.type == "cpu":
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler
        except ImportError:
            return
        try:
            get_cpp_compiler()
        except Exception as e:  # noqa: BLE001
            raise fail(f"needs a C++ compiler on CPU (none found: {e})") from e


class Trainer:
    """Builds every component of a training config and runs the engine.

    Args:
        cfg: the loaded config (`ai4med.config.load_config`).
        ckpt_dir: where checkpoints and TensorBoard events go (MMAR_CKPT_DIR).
        eval_dir: where validation reports go (MMAR_EVAL_OUTPUT_PATH).
        device: "cpu", "cuda", ... (default: this rank's GPU, else CPU).
        pretrained: a checkpoint to start from (MMAR_CKPT / seed `-c`).
    """

    def __init__(self, cfg: WorkflowConfig, ckpt_dir: str, eval_dir: str | None = None, device: str | None = None,
                 pretrained: str | None = None) -> None:
        self.cfg = cfg
        self.settings = TrainSettings.from_config(cfg)
        self.ckpt_dir = ckpt_dir
        self.eval_dir = eval_dir
        self.device = dist_utils.local_device(device)
        if self.settings.multi_gpu:
            self.rank, self.world = dist_utils.init_distributed(self.device)
        else:
            launched = dist_utils.launched_world_size()
            if launched > 1:  # each process would train the whole model alone, into the same files
                raise ConfigError(f"multi_gpu is false, but a launcher started {launched} processes for this run "
                                  "(WORLD_SIZE): each would train the same model into the same folder; set "
                                  "multi_gpu=true (e.g. --set multi_gpu=true) or start one process", cfg.file,
                                  "/multi_gpu")
            self.rank, self.world = 0, 1
        self.data_seed = seed_everything(self.settings.determinism)
        self.precision = _amp_precision(self.settings.use_amp, self.device)
        if self.device.type == "cpu":
            from ai4med.components.inferers.precision import tune_malloc

            tune_malloc()  # freed tensor memory stays in-process: no page-fault storm each step
        self.history: list[dict[str, float]] = []
        self._build(pretrained)
        if self.rank == 0:  # before the first step: data a run would not stop for, and --set typos
            self._warn_off_grid()
            cfg.warn_unused_overrides(logger)  # every setting has been read by now

    # --- building ------------------------------------------------------------------
    def _pipeline(self, section: str, required: bool) -> Any:
        if not self.cfg.has(f"/{section}/image_pipeline"):
            if required:
                raise ConfigError("a training config needs an image_pipeline", self.cfg.file, f"/{section}")
            return None
        pipeline = self.cfg.build(f"/{section}/image_pipeline", "pipelines")
        if self.cfg.has(f"/{section}/pre_transforms"):
            pipeline.set_transforms(self.cfg.build_list(f"/{section}/pre_transforms", "transforms"))
        if self.cfg.has(f"/{section}/batch_transforms"):
            pipeline.set_batch_transforms(self.cfg.build_list(f"/{section}/batch_transforms", "transforms"))
        if self.data_seed is not None and self.cfg.get(f"/{section}/image_pipeline/args/seed") is None:
            pipeline.seed = self.data_seed
        return pipeline

    def _build(self, pretrained: str | None) -> None:
        from ai4med.components.models.torch_model import as_model, find_module

        cfg = self.cfg
        self.train_pipeline = self._pipeline("train", required=True)
        self.val_pipeline = self._pipeline("validate", required=False)
        if self.val_pipeline is not None and hasattr(self.val_pipeline, "output_properties"):
            self.val_pipeline.output_properties = True  # case names for the reports
        self.model = as_model(cfg.build("/train/model", "models"), cfg.file, "/train/model")
        self.module = find_module(self.model).to(self.device)
        if pretrained:
            if not os.path.exists(pretrained):
                raise ConfigError(f"checkpoint to start from not found: {pretrained}", cfg.file, "/MMAR_CKPT")
            load_weights(self.module, pretrained)
            logger.info("initialised the model from %s", pretrained)
        if self.settings.channels_last is True:
            to_channels_last(self.module)
        if self.settings.compile:  # the inner module, before DDP wraps it (as torch advises)
            compile_module(self.module, self.device, cfg)
        self.train_module: torch.nn.Module = self.module
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_module = torch.nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        self.loss = cfg.build("/train/loss", "losses")
        self.optimizer = self._optimizer()
        self.lr_policy = cfg.build("/train/lr_policy", "lr_policies") if cfg.has("/train/lr_policy") else None
        self.aux_ops = cfg.build_list("/train/aux_ops", "aux_ops") if cfg.has("/train/aux_ops") else []
        self.metrics = cfg.build_list("/validate/metrics", "metrics") if cfg.has("/validate/metrics") else []
        self.inferer = cfg.build("/validate/inferer", "inferers") if cfg.has("/validate/inferer") else None
        self.handlers = cfg.build_list("/train/handlers", "handlers") if cfg.has("/train/handlers") else []
        step_policy = self.lr_policy if getattr(self.lr_policy, "trigger", "step") == "step" else None
        layout = self.settings.channels_last
        if self.settings.compile and layout == "auto":  # torch.compile chooses its own layouts: time nothing
            layout = False
        self.step = TrainStep(self.model, self.module, self.loss, self.optimizer, self.device, self.precision,
                              self.aux_ops, step_policy, self.total_epochs(), train_module=self.train_module,
                              channels_last=layout)

    def total_epochs(self) -> int:
        """`epochs`, or with an `iterations` budget the epochs it spans (the last may be partial)."""
        s = self.settings
        if not s.iterations:
            return s.epochs
        per_epoch = len(self.train_pipeline)
        if per_epoch < 1:
            raise ConfigError("the training pipeline yields no batches: no iteration budget can be met",
                              self.cfg.file, "/train/image_pipeline")
        return -(-s.iterations // per_epoch)

    def _optimizer(self) -> torch.optim.Optimizer:
        lr = self.settings.learning_rate
        if not self.cfg.has("/train/optimizer"):  # Clara's SupervisedTrainer default
            return torch.optim.Adam(self.module.parameters(), lr=lr)
        opt = self.cfg.build("/train/optimizer", "optimizers")
        if isinstance(opt, torch.optim.Optimizer):
            return opt
        if hasattr(opt, "get_optimizer"):
            return opt.get_optimizer(self.module.parameters(), lr)
        raise ConfigError(f"{type(opt).__name__} is not an optimizer component (no get_optimizer)",
                          self.cfg.file, "/train/optimizer")

    # --- validation ----------------------------------------------------------------
    def make_validator(self) -> Validator | None:
        if self.val_pipeline is None or not self.metrics:
            return None
        from ai4med.components.inferers.torch_predictor import TorchInferenceContext

        predictor_module = PredictionModule(self.model, self.module)
        inferer = self.inferer
        if inferer is None:
            from ai4med.components.inferers.torch_inferers import TorchSimpleInferer

            inferer = TorchSimpleInferer()

        def predict(image: np.ndarray) -> np.ndarray:
            self.module.eval()
            ctx = TorchInferenceContext(predictor_module, device=self.device, precision=self.precision,
                                         runtime="torch")
            fmt = "CDHW" if image.ndim == 4 else "CHW"
            return inferer.infer({"image": image}, fmt, ctx)["pred"]

        return Validator(predict, self.val_pipeline, self.metrics)

    def _warn_off_grid(self) -> None:
        """A label whose affine differs from its image's trains on misaligned voxels without any error;
        say so before the first step (headers only: milliseconds a case)."""
        from ai4med.io.geometry_check import grid_problems

        for section, pipeline in (("training", self.train_pipeline), ("validation", self.val_pipeline)):
            items = pipeline.get_data_list() if hasattr(pipeline, "get_data_list") else []
            bad = [(i, p) for i, item in enumerate(items) if isinstance(item, dict) for p in grid_problems(item)]
            if bad:
                logger.warning("%d %s case(s) of %d have a label off the image's grid (item %d: %s)%s; "
                               "`ai4med check-datalist` lists them all", len({i for i, _ in bad}), section,
                               len(items), bad[0][0], bad[0][1], "" if len(bad) == 1 else ", ...")

    # --- running -------------------------------------------------------------------
    def run(self, resume: bool = False) -> Engine:
        s = self.settings
        main = dist_utils.is_main_process()
        engine = Engine(self.step)
        engine.state.extra["persist"] = {"pipeline_seed": self.train_pipeline.seed}
        if self.aux_ops:  # before the stats handler, which prints the epoch's aux means
            self._attach_aux_accumulator(engine)
        try:
            epoch_length: int | None = len(self.train_pipeline)
        except TypeError:  # a BYOC pipeline without a length: no "i/n" and no time left
            epoch_length = None
        StatsHandler(log_every=s.log_every, epoch_length=epoch_length).attach(engine)
        validator = self.make_validator()
        if validator is not None:
            from ai4med.workflows.handlers.validation import ValidationHandler

            key = validator.key_metric_name()
            def evaluate() -> dict[str, float]:
                self._sync_buffers()
                results = validator.run(engine.state.epoch)
                if validator.last_slice is not None:
                    engine.state.extra["tb_images"] = {"validation/first_case_middle_slice": validator.last_slice}
                return results

            ValidationHandler(evaluate, key, every=s.num_training_epoch_per_valid,
                              every_iterations=s.num_training_iterations_per_valid).attach(engine)
            if s.early_stopping_patience:
                EarlyStopping(int(s.early_stopping_patience)).attach(engine)
        if self.lr_policy is not None and getattr(self.lr_policy, "trigger", "step") != "step":
            self._attach_lr_policy(engine)
        engine.add_handler(Events.EPOCH_COMPLETED, self._record_lr, name="lr")
        if main:  # files are written by rank 0 only
            from ai4med.workflows.handlers.tensorboard import TensorBoardHandler

            engine.add_handler(Events.EPOCH_COMPLETED, self._record_history, name="history")
            engine.add_handler(Events.COMPLETED, self._record_cut_epoch, name="history")
            self._checkpoint_handler().attach(engine)
            TensorBoardHandler(self.ckpt_dir, s.train_summary_recording_interval).attach(engine)
        for handler in self.handlers:
            handler.attach(engine)
        if resume:
            self._resume(engine)
            self.history = _load_history(self.ckpt_dir, engine.state.epoch, engine.state.iteration)
            self.train_pipeline.seed = engine.state.extra["persist"]["pipeline_seed"]  # same data order

        def batches(epoch: int) -> Any:
            self.train_pipeline.set_epoch(epoch)
            done = engine.state.epoch_iteration  # > 0 after a mid-epoch resume: skip what was trained
            if not done:
                return iter(self.train_pipeline)
            if hasattr(self.train_pipeline, "skip_batches"):
                self.train_pipeline.skip_batches(done)
                return iter(self.train_pipeline)
            return itertools.islice(iter(self.train_pipeline), done, None)

        epochs = self.total_epochs()
        budget = f"{s.iterations} iterations ({epochs} epochs)" if s.iterations else f"{epochs} epochs"
        logger.info("training %s on %s (%s, %d process%s), %d training batches per epoch", budget,
                    self.device, self.precision, self.world, "es" if self.world > 1 else "", len(self.train_pipeline))
        engine.run(batches, epochs, s.iterations or None)
        if validator is not None and self.eval_dir and main:
            validator.write_reports(self.eval_dir)
        return engine

    def _sync_buffers(self) -> None:
        """Every rank validates with rank 0's BatchNorm statistics (the ones checkpoints keep)."""
        if self.world > 1:
            for buf in self.module.buffers():
                torch.distributed.broadcast(buf, 0)

    def _checkpoint_handler(self) -> CheckpointHandler:
        """`checkpoint_interval` counts epochs, or iterations with an `iterations` budget (default:
        every epoch); 0 keeps only the checkpoints at the end and on validation improvements."""
        s = self.settings
        interval = s.checkpoint_interval
        if s.iterations and interval is not None:
            return CheckpointHandler(self.ckpt_dir, self.module, self.optimizer, self.lr_policy, save_every=0,
                                     every_iterations=interval)
        return CheckpointHandler(self.ckpt_dir, self.module, self.optimizer, self.lr_policy,
                                 save_every=1 if interval is None else interval)

    def _resume(self, engine: Engine) -> None:
        probe = CheckpointHandler(self.ckpt_dir, self.module, self.optimizer, self.lr_policy)
        if not probe.resume(engine):
            logger.warning("--resume: no checkpoint in %s, starting from scratch", self.ckpt_dir)
        if dist_utils.world_size() > 1:  # every rank resumes the same file; keep them in step
            torch.distributed.barrier()

    def _record_history(self, engine: Engine) -> None:
        """Per-epoch metrics, kept in memory and in models/training_history.json (for curves)."""
        import json

        from ai4med.io.atomic import atomic_write_text

        s = engine.state
        epoch = s.epoch + 1 if s.in_epoch else s.epoch  # an epoch cut short by the iteration budget
        fresh = s.extra.get("validated_epoch") == epoch
        entry = {"epoch": epoch, "iteration": s.iteration}
        self.history.append({**entry, **{k: float(v) for k, v in s.metrics.items() if fresh or not k.startswith("val_")}})
        atomic_write_text(os.path.join(self.ckpt_dir, "training_history.json"), json.dumps(self.history, indent=1))

    def _record_cut_epoch(self, engine: Engine) -> None:
        """At the end: the epoch the iteration budget cut short, when it was validated."""
        s = engine.state
        if s.in_epoch and s.extra.get("validated_iteration") == s.iteration:
            self._record_history(engine)

    def _record_lr(self, engine: Engine) -> None:
        engine.state.metrics["learning_rate"] = float(self.optimizer.param_groups[0]["lr"])

    def _attach_lr_policy(self, engine: Engine) -> None:
        policy = self.lr_policy
        if policy.trigger == "epoch":
            total = self.total_epochs()
            engine.add_handler(Events.EPOCH_STARTED, lambda e: policy.apply(
                self.optimizer, step=e.state.iteration, epoch=e.state.epoch, total_epochs=total), name="lr")
        elif policy.trigger == "validation":
            def on_val(e: Engine) -> None:
                if "key_metric_value" in e.state.extra:
                    policy.apply(self.optimizer, step=e.state.iteration, epoch=e.state.epoch,
                                 metric=e.state.extra["key_metric_value"], total_epochs=self.total_epochs())

            engine.add_handler(Events.VALIDATION_COMPLETED, on_val, name="lr")

    def _attach_aux_accumulator(self, engine: Engine) -> None:
        from ai4med.components.aux_ops.accumulator import MetricAccumulator

        acc = MetricAccumulator()

        def on_iter(e: Engine) -> None:
            out = e.state.output if isinstance(e.state.output, dict) else {}
            acc.update(out.get("aux", {}))

        def on_epoch(e: Engine) -> None:
            means = acc.means()
            e.state.extra["epoch_aux"] = means
            e.state.metrics.update({f"train_{k}": v for k, v in means.items()})
            acc.reset()

        engine.add_handler(Events.ITERATION_COMPLETED, on_iter, name="aux")
        engine.add_handler(Events.EPOCH_STARTED, lambda e: acc.reset(), name="aux")
        engine.add_handler(Events.EPOCH_COMPLETED, on_epoch, name="aux")


def _load_history(ckpt_dir: str, up_to_epoch: int, up_to_iteration: int) -> list[dict[str, float]]:
    import json

    path = os.path.join(ckpt_dir, "training_history.json")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [h for h in json.load(fh) if h["epoch"] <= up_to_epoch and h.get("iteration", 0) <= up_to_iteration]
