"""The base inference application (seed 003): input folder -> output + publish folders.

For each input (a NIfTI / MetaImage volume, or a DICOM series) of the input folder:
pre-transforms -> scanning-window inference (client-side; windows go to a local TorchScript /
ONNX model (OpenVINO on a CPU by default; `--runtime onnxruntime`: ONNX Runtime) or to Triton over
HTTP / gRPC) -> post-transforms -> writers:

* `<output>/<input name>.mhd` + `.raw`: the segmentation, with the input's geometry;
* `<publish>/image.mhd`, `image.seg.mhd` (+ `.raw`) and `config_render.json` for the render
  server (several inputs: one `<publish>/<input name>/` folder each);
* `<logs>/deploy.log`: the run's log, with the time of each case and a summary.

A DICOM folder holding several series (a whole study) gives one input per series, named as
the data converter names them: `<folder>_1`, `<folder>_2`, ... in SeriesNumber order; series
that are not one regular volume (localizers, gaps) are ignored with the reason, and
`--series_filter REGEX` / AI4MED_DEPLOY_SERIES_FILTER keeps the series whose Modality or
SeriesDescription matches. The log and the summary say which series each output is.

The application folder (`--app`) holds `config/config_inference.json` (pre/post transforms,
inferer, model loader, writers), `config/model_config.json` (seed 003's keys) and
`config/config_render.json`; the bundled base application is used when none is given.
Which model runs (first match): `--model` / AI4MED_DEPLOY_MODEL (local), `--triton_url` /
AI4MED_TRITON_URL / NVIDIA_CLARA_TRTISURI (Triton), the config's `model_loader`, the app's
`models/model.ts` or `models/model.onnx`.

One bad input is reported and skipped, the others are processed. Exit status: 0 every input
written; 3 some inputs failed (named in the log and the summary); 1 nothing could be done
(no input, missing folder, bad config, unreachable server, every input failed), with one
line saying why, within the Triton timeout.

Example:
    >>> import argparse
    >>> from ai4med.deploy.cli_args import add_deploy_args
    >>> p = argparse.ArgumentParser(); add_deploy_args(p)
    >>> run(p.parse_args(["--check", "--model", "/no/such/model.onnx"]))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ai4med.deploy.settings import BASE_APP, DeploySettings
from ai4med.errors import UserError
from ai4med.io.inputs import UNREADABLE_DICOM

__all__ = ["run", "deploy", "init_app", "load_app", "discover_inputs", "split_series", "DeployApp", "DeployInput",
           "InputPlan", "DeployResult", "DeployError",
           "EXIT_OK", "EXIT_FATAL", "EXIT_PARTIAL"]

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL = 0, 1, 3
CONFIG_INFERENCE = os.path.join("config", "config_inference.json")
MODEL_CONFIG = os.path.join("config", "model_config.json")
RENDER_CONFIG = os.path.join("config", "config_render.json")
MODEL_CONFIG_KEYS = ("model_name", "input_node_names", "output_node_names", "data_format", "output_channel_dict",
                     "network_input_size")


class DeployError(UserError):
    """Nothing can be deployed: the message says what and where."""


# --- the application folder ---------------------------------------------------------------------
def _read_json(path: str, what: str) -> Any:
    if not os.path.isfile(path):
        raise DeployError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as e:
        raise DeployError(f"{path}: cannot read {what}: {e}") from e


def check_model_config(doc: Any, path: str) -> dict[str, Any]:
    """Seed 003's model_config.json, checked: every key present and of the right kind."""
    if not isinstance(doc, dict):
        raise DeployError(f"{path}: model_config.json must be a JSON object")
    missing = [k for k in MODEL_CONFIG_KEYS if k not in doc]
    if missing:
        raise DeployError(f"{path}: missing key(s) {', '.join(missing)} (seed 003 keys: {', '.join(MODEL_CONFIG_KEYS)})")
    for key in ("input_node_names", "output_node_names"):
        if not (isinstance(doc[key], list) and doc[key] and all(isinstance(n, str) for n in doc[key])):
            raise DeployError(f"{path}: {key} must be a non-empty list of names, got {doc[key]!r}")
    size = doc["network_input_size"]
    if not (isinstance(size, list) and len(size) in (2, 3) and all(isinstance(s, int) and s > 0 for s in size)):
        raise DeployError(f"{path}: network_input_size must be 2 or 3 positive integers, got {size!r}")
    if doc["data_format"] != "channels_first":
        raise DeployError(f"{path}: data_format {doc['data_format']!r}: only channels_first models are supported")
    channels = doc["output_channel_dict"]
    if not (isinstance(channels, dict) and all(isinstance(v, int) and v > 0 for v in channels.values())):
        raise DeployError(f"{path}: output_channel_dict must map output names to channel counts, got {channels!r}")
    if not isinstance(doc["model_name"], str) or not doc["model_name"]:
        raise DeployError(f"{path}: model_name must be a non-empty string")
    return doc


@dataclass
class DeployApp:
    """A loaded application folder: the config, the model description and the built components."""

    root: str
    cfg: Any
    model_config: dict[str, Any]
    render_config: str | None
    pre_transforms: list[Any]
    post_transforms: list[Any]
    inferer: Any
    writers: list[Any]
    model_loader: Any


def load_app(root: str, overrides: Sequence[str] = ()) -> DeployApp:
    """Load and build the application folder `root` (its config/ files); every problem is a DeployError."""
    from ai4med.components.inferers.sw_inferer import ScanWindowInferer
    from ai4med.components.writers.prediction import MhdWriter
    from ai4med.config.loader import load_json
    from ai4med.config.workflow_config import load_config
    from ai4med.deploy.components import TRTISScanWindowInferer

    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise DeployError(f"application folder not found: {root}")
    config_file = os.path.join(root, CONFIG_INFERENCE)
    if not os.path.isfile(config_file):
        raise DeployError(f"{root} is not an application folder: it has no {CONFIG_INFERENCE}")
    model_config_file = os.path.join(root, MODEL_CONFIG)
    model_config = check_model_config(_read_json(model_config_file, "model_config.json"), model_config_file)
    render = os.path.join(root, RENDER_CONFIG)
    if not os.path.isfile(render):
        logger.warning("%s has no %s: the publish folder gets no render configuration", root, RENDER_CONFIG)
    raw = load_json(config_file)
    given = {o.split("=", 1)[0] for o in overrides}
    defaults = {"APP_ROOT": root, "PBTXT_PATH": "", "MODEL_DIR": os.path.join(root, "models")}
    extra = [f"{k}={v}" for k, v in defaults.items() if k not in given and not (isinstance(raw, dict) and k in raw)]
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise DeployError(f"overrides must be KEY=VALUE, got {bad}")
    cfg = load_config(config_file, None, [*extra, *overrides], mmar_root=root)
    pre = cfg.build_list("/pre_transforms", "transforms")
    if not pre:
        raise DeployError(f"{config_file}: pre_transforms is empty: the images must at least be loaded (LoadNifti)")
    post = cfg.build_list("/post_transforms", "transforms")
    inferer = cfg.build("/inferer", "inferers", required=False) or TRTISScanWindowInferer()
    if isinstance(inferer, ScanWindowInferer) and not inferer.roi_size:
        inferer.roi_size = list(model_config["network_input_size"])
    writers = cfg.build_list("/writers", "writers") if cfg.has("/writers") else [MhdWriter()]
    loader = cfg.build("/model_loader", "model_loaders", required=False)
    cfg.override_keys = [k for k in cfg.override_keys if k in given]  # the app's own defaults are not checked
    cfg.warn_unused_overrides(logger)
    return DeployApp(root, cfg, model_config, render if os.path.isfile(render) else None, pre, post, inferer,
                     writers, loader)


# --- the model ------------------------------------------------------------------------------------
def _local_model_path(path: str, app_root: str) -> str:
    path = os.path.expanduser(path)
    candidates = [path] if os.path.isabs(path) else [os.path.abspath(path), os.path.join(app_root, path)]
    for p in candidates:
        if os.path.isdir(p):
            found = [os.path.join(p, n) for n in ("model.ts", "model.onnx") if os.path.isfile(os.path.join(p, n))]
            if found:
                return found[0]
        elif os.path.isfile(p):
            return p
    raise DeployError(f"model file not found: {path} (a TorchScript .ts or ONNX .onnx file from `ai4med export`, "
                      "a checkpoint in an MMAR's models/ folder, or a folder holding model.ts / model.onnx)")


def _triton_target(app: DeployApp, settings: DeploySettings) -> tuple[str, str, str]:
    """(url, protocol, where the address came from) for Triton."""
    from ai4med.deploy.components import TRTISScanWindowInferer
    from ai4med.inference.loaders import TritonModelLoader, TRTISModelLoader

    loader, inferer = app.model_loader, app.inferer
    url, source = settings.triton_url, settings.triton_url_source
    config_url = config_protocol = None
    if isinstance(loader, TritonModelLoader):
        config_url, config_protocol = loader.url, loader.protocol
    elif isinstance(loader, TRTISModelLoader) and loader.url:
        config_url, config_protocol = loader.url, loader.protocol
    if config_url is None and isinstance(inferer, TRTISScanWindowInferer):
        config_url, config_protocol = inferer.url, inferer.protocol
    if not url:
        url, source = config_url or "localhost:8000", "the config" if config_url else "default"
    protocol = settings.triton_protocol or (str(config_protocol).lower() if config_protocol else None) or "http"
    from ai4med.deploy.settings import split_url

    url, scheme = split_url(url)
    if scheme and not settings.triton_protocol:
        protocol = scheme
    if protocol not in ("http", "grpc"):
        raise DeployError(f"Triton protocol must be HTTP or GRPC, got {protocol!r}")
    return url, protocol, source


def make_context(app: DeployApp, settings: DeploySettings) -> tuple[Any, str]:
    """The inference context to run and a line describing it (see the module docstring for the order)."""
    from ai4med.apps._cli_args import resolve_device
    from ai4med.components.inferers.triton_predictor import FailFastTritonContext, TritonUnavailableError
    from ai4med.inference.loaders import ModelFileLoader, TritonModelLoader, TRTISModelLoader
    from ai4med.inference.models import model_format, open_model

    if settings.model and settings.sources.get("model", "").startswith("flag") and settings.triton_url and \
            settings.triton_url_source.startswith("flag"):
        raise DeployError("give either --model (local inference) or --triton_url (Triton), not both")
    loader = app.model_loader
    triton_loader = isinstance(loader, (TRTISModelLoader, TritonModelLoader))
    local = settings.model
    local_source = settings.model_source
    if not local and not settings.triton_url and loader is not None and not triton_loader:
        if not isinstance(loader, ModelFileLoader):
            raise DeployError(f"{app.cfg.file}: model_loader {type(loader).__name__} needs a training config; the "
                              "deploy app runs exported models (TorchScriptLoader / OnnxModelLoader / TRTISModelLoader)"
                              " or a checkpoint in an MMAR's models/ folder (--model)")
        local, local_source = loader.resolve(app.cfg), "the config's model_loader"
    if not local and not settings.triton_url and loader is None:
        try:
            local, local_source = _local_model_path(os.path.join(app.root, "models"), app.root), "the app's models/"
        except DeployError as e:
            raise DeployError(f"{app.cfg.file} has no model_loader and {e}; give --model or --triton_url") from e
    if isinstance(local, (list, tuple)):  # an ensemble (a model_loader listing several files)
        device = resolve_device(settings.device)
        paths = [_local_model_path(p, app.root) for p in local]
        try:
            ctx = open_model(paths, device=device, precision=getattr(settings, "precision", "fp32"),
                             runtime=settings.runtime)
        except UserError:
            raise
        except Exception as e:
            raise DeployError(f"cannot load the ensemble {paths}: {type(e).__name__}: {e}") from e
        return ctx, f"an ensemble of {len(paths)} local models ({', '.join(paths)}) on {device} (from {local_source})"
    if local:
        path = _local_model_path(local, app.root)
        device = resolve_device(settings.device)
        try:
            ctx = open_model(path, device=device, precision=getattr(settings, "precision", "fp32"),
                             runtime=settings.runtime,
                             trust=bool(getattr(settings, "trust_checkpoint", False)))
        except UserError:
            raise
        except Exception as e:
            raise DeployError(f"cannot load the model {path}: {type(e).__name__}: {e}") from e
        kind = {"onnx": "ONNX", "torchscript": "TorchScript", "checkpoint": "checkpoint",
                "openvino": "OpenVINO IR"}[model_format(path)]
        line = f"local {kind} model {path} on {device}"
        if getattr(settings, "precision", "fp32") == "int8":
            line += f", INT8 ({getattr(ctx, 'model_path', '')})"
        if path.lower().endswith(".onnx"):
            engine = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}[ctx.runtime]
            origin = settings.sources.get("runtime", "default")
            line += f", runtime {engine} (--runtime {settings.runtime}" + (
                f" from {origin})" if origin != "default" else ")")
        return ctx, f"{line} (from {local_source})"
    url, protocol, source = _triton_target(app, settings)
    name = settings.triton_model_name or app.model_config["model_name"]
    t = time.monotonic()
    try:
        if isinstance(loader, TRTISModelLoader):
            ctx = loader.connect(name, url, protocol, settings.triton_timeout)
        else:
            ctx = FailFastTritonContext(name, url, protocol, timeout=settings.triton_timeout)
    except (TritonUnavailableError, ImportError, ValueError) as e:
        raise DeployError(f"Triton unreachable ({url} from {source}, {protocol}, after {time.monotonic() - t:.1f} s "
                          f"of {settings.triton_timeout:g} s allowed): {e}") from e
    return ctx, f"Triton model {ctx.model_name!r} at {url} ({protocol}, address from {source})"


def _match_nodes(ctx: Any, model_config: dict[str, Any], model_config_file: str) -> None:
    """Check the model's input/output names against model_config.json; its first output is the prediction."""
    from ai4med.components.inferers.onnx_predictor import OnnxInferenceContext
    from ai4med.components.inferers.openvino_predictor import OpenVinoInferenceContext
    from ai4med.components.inferers.triton_predictor import TritonInferenceContext

    if not isinstance(ctx, (OnnxInferenceContext, OpenVinoInferenceContext, TritonInferenceContext)):
        return  # TorchScript modules have no tensor names
    inputs, outputs = model_config["input_node_names"], model_config["output_node_names"]
    if set(inputs) != set(ctx.input_names):
        raise DeployError(f"{model_config_file}: input_node_names {inputs} do not match the model's inputs "
                          f"{list(ctx.input_names)}")
    if outputs[0] not in ctx.output_names:
        raise DeployError(f"{model_config_file}: output {outputs[0]!r} is not an output of the model "
                          f"(it has {list(ctx.output_names)})")
    ctx.output_names = [outputs[0]] + [n for n in ctx.output_names if n != outputs[0]]


# --- inputs ---------------------------------------------------------------------------------------
def discover_inputs(folder: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(inputs, ignored): the volumes and DICOM folders in `folder` (`ai4med.io.inputs.find_inputs`)."""
    from ai4med.io.inputs import InputFolderError, find_inputs

    if not os.path.isdir(folder):
        raise DeployError(f"input folder not found: {folder} (give --input or AI4MED_DEPLOY_INPUT)")
    try:
        return find_inputs(folder)
    except InputFolderError as e:  # a folder that cannot be listed
        raise DeployError(str(e)) from e


@dataclass(frozen=True)
class DeployInput:
    """One case of a run: a volume file, a DICOM series folder, or one series of a folder holding several.

    Attributes:
        path: the file or folder in the input folder.
        name: the output name (`<name>.mhd`; publish sub-folder `<name>/`).
        series: the DICOM series (`ai4med.io.dicom.SeriesInfo`) when the case is one; None for volumes.
        split: the series is one of several in `path`: its files are read on their own (staged).
    """

    path: str
    name: str
    series: Any = None
    split: bool = False

    @property
    def key(self) -> str:
        """The case's name in `DeployResult` and the log: the input's base name, or `name` for a split series."""
        return self.name if self.split else _case_name(self.path)

    def describe(self) -> str:
        """`folder: DICOM series #3 "Abdomen portal" (CT, 120 slices of 512x512, UID ...)`; a volume: its path."""
        return _describe_series(self.path, self.series) if self.series is not None else self.path


def _describe_series(folder: str, series: Any) -> str:
    number = f"#{series.series_number}" if series.series_number is not None else "(no SeriesNumber)"
    what = f" {series.description!r}" if series.description else ""
    size = f"{series.size[0]}x{series.size[1]}"
    return (f"{folder}: DICOM series {number}{what} ({series.modality or 'no modality'}, {series.num_slices} "
            f"slice(s) of {size}, UID {series.series_uid})")


def series_matches(series: Any, pattern: re.Pattern[str] | None) -> bool:
    """True when the series' Modality or SeriesDescription matches `pattern` (searched; None: every series)."""
    return pattern is None or any(pattern.search(t or "") for t in (series.modality, series.description))


@dataclass
class InputPlan:
    """What `split_series` makes of the inputs.

    Attributes:
        cases: what runs, in order.
        ignored: (what, why) left out: series not matching the filter, series that are not a volume.
        failed: input name -> why, for a DICOM folder none of whose series can be segmented.
        series: case name (`DeployInput.key`) -> description (folder, number, description, modality,
            slices) of every DICOM series met, run or not.
        skipped: case name -> why, for the series of `series` that do not run.
    """

    cases: list[DeployInput] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    series: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def split_series(inputs: Sequence[str], series_filter: re.Pattern[str] | None = None) -> InputPlan:
    """The cases of the inputs of `discover_inputs`: one per volume file and one per DICOM series.

    * a volume file is one case, named after the file;
    * a DICOM folder with one series is one case named after the folder (`CT5N` -> `CT5N.mhd`);
    * a DICOM folder with several series gives one case per series, named as the data converter
      names them: `<folder>_1`, `<folder>_2`, ... in SeriesNumber order (the number counts every
      series of the folder, so a series keeps its name whatever the filter). A series that is
      not one regular volume (a localizer mixing orientations, a gap, ...) is ignored, with the
      reason, while the others run; when none can run, the folder fails with the reasons.

    `series_filter` (case-insensitive, searched in Modality and SeriesDescription) keeps the
    matching DICOM series; the others are ignored. Volume files are not filtered.
    """
    from ai4med.io.dicom import DicomSeriesError, list_series
    from ai4med.io.names import image_stem

    plan = InputPlan()

    def unmatched(name: str, what: str, description: str) -> None:
        why = f"does not match the series filter {series_filter.pattern!r}"  # type: ignore[union-attr]
        plan.ignored.append((what, f"{description} {why}"))
        plan.series[name], plan.skipped[name] = description, "ignored: " + why

    for path in inputs:
        base = image_stem(path)
        if not os.path.isdir(path):
            plan.cases.append(DeployInput(path, base))
            continue
        try:
            series = list_series(path)
        except DicomSeriesError:
            series = []
        if len(series) <= 1:  # the folder is the case; a series with problems fails when read, as before
            s = series[0] if series else None
            if s is not None and not series_matches(s, series_filter):
                unmatched(_case_name(path), path, _describe_series(path, s))
                continue
            plan.cases.append(DeployInput(path, base, s))
            if s is not None:
                plan.series[_case_name(path)] = _describe_series(path, s)
            continue
        broken: list[tuple[str, str, str]] = []
        runs = 0
        for k, s in enumerate(series, start=1):
            name, description = f"{base}_{k}", _describe_series(path, s)
            plan.series[name] = description
            if not series_matches(s, series_filter):
                unmatched(name, f"{path} [{name}]", description)
            elif not s.ok:
                broken.append((name, description, "not one volume: " + "; ".join(s.problems)))
            else:
                plan.cases.append(DeployInput(path, name, s, split=True))
                runs += 1
        if broken and not runs:
            which = " that match the series filter" if series_filter is not None else ""
            plan.failed[_case_name(path)] = (f"none of the {len(broken)} DICOM series of {path}{which} can be "
                                             "segmented: " + " | ".join(f"{n}: {d}: {why}" for n, d, why in broken))
        for name, description, why in broken:
            if runs:
                plan.ignored.append((f"{path} [{name}]", f"{description}: {why}"))
                plan.skipped[name] = "ignored: " + why
            else:
                plan.skipped[name] = "failed: " + why
    return plan


def _stage_series(case: DeployInput, root: str, index: int) -> str:
    """A folder `<root>/<index>/<case name>` holding links to (or copies of) the series' files only."""
    folder = os.path.join(root, str(index), case.name)
    os.makedirs(folder)
    for f in case.series.files:
        source, target = os.path.abspath(f), os.path.join(folder, os.path.basename(f))
        try:
            os.symlink(source, target)
        except OSError:
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
    return folder


# --- the run ----------------------------------------------------------------------------------------
@dataclass
class DeployResult:
    """What a run did: inputs written (name -> files), failed (name -> error), ignored (what, why),
    seconds, the model; `series`: output name -> which DICOM series (folder, number, description,
    modality, slices) for every series met, and `skipped`: output name -> why, for those not run."""

    written: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    model: str = ""
    series: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if not self.written:
            return EXIT_FATAL
        return EXIT_PARTIAL if self.failed else EXIT_OK

    def summary(self) -> str:
        """One line (counts, time, failures), then one line per DICOM series: its name, what it is, what became of it."""
        n = len(self.written) + len(self.failed)
        line = (f"deploy summary: {len(self.written)} of {n} input(s) segmented in {self.seconds:.1f} s"
                + (f" ({self.seconds / n:.2f} s per input)" if n else ""))
        if self.failed:
            line += f"; {len(self.failed)} failed: " + "; ".join(f"{k}: {v}" for k, v in self.failed.items())
        lines = [line]
        for name, what in self.series.items():
            status = ("written" if name in self.written else "FAILED" if name in self.failed
                      else self.skipped.get(name, "not run"))
            lines.append(f"  {name} <- {what}: {status}")
        return "\n".join(lines)


def _prepare_folder(path: str, what: str) -> str:
    path = os.path.abspath(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise DeployError(f"cannot create the {what} folder {path}: {e}") from e
    if not os.access(path, os.W_OK):
        raise DeployError(f"the {what} folder {path} is not writable")
    return path


class _LogFile:
    """`<logs>/deploy.log` for the duration of a run (a warning, not an error, when it cannot be opened)."""

    def __init__(self, folder: str) -> None:
        self.folder, self.handler, self.level = folder, None, None

    def __enter__(self) -> _LogFile:
        try:
            os.makedirs(self.folder, exist_ok=True)
            self.handler = logging.FileHandler(os.path.join(self.folder, "deploy.log"), encoding="utf-8")
        except OSError as e:
            logger.warning("no log file: cannot write to the logs folder %s (%s)", self.folder, e)
            return self
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.handler.setLevel(logging.INFO)
        top = logging.getLogger("ai4med")
        top.addHandler(self.handler)
        if top.getEffectiveLevel() > logging.INFO:
            self.level = top.level
            top.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handler is not None:
            top = logging.getLogger("ai4med")
            top.removeHandler(self.handler)
            self.handler.close()
            if self.level is not None:
                top.setLevel(self.level)


def _case_name(path: str) -> str:
    return os.path.basename(os.path.normpath(path))


def deploy(settings: DeploySettings) -> DeployResult:
    """Run the application on every input; raises DeployError when nothing can be done."""
    import tempfile

    from ai4med.components.writers.prediction import PublishWriter
    from ai4med.inference.pipeline import CasePipeline
    from ai4med.inference.runner import Prefetch, run_cases

    start = time.perf_counter()
    with _LogFile(settings.logs):
        app = load_app(settings.app, settings.overrides)
        logger.info("application %s (config %s)", app.root, app.cfg.file)
        inputs, ignored = discover_inputs(settings.input)
        try:
            pattern = settings.series_pattern
        except ValueError as e:
            raise DeployError(str(e)) from e
        plan = split_series(inputs, pattern)
        for path, why in [x for x in ignored if x[1].startswith(UNREADABLE_DICOM)]:
            plan.failed[_case_name(path)] = f"{path}: {why}"  # meant as an input: a failure, not a note
        ignored = [x for x in ignored if not x[1].startswith(UNREADABLE_DICOM)] + plan.ignored
        for path, why in ignored:
            logger.warning("ignored %s: %s", path, why)
        for name, why in plan.failed.items():
            logger.error("%s failed: %s", name, why)
        if not plan.cases and not plan.failed:
            filtered = f"; the series filter {pattern.pattern!r} matched no DICOM series" if pattern else ""
            raise DeployError(f"no input in {os.path.abspath(settings.input)}: expected NIfTI (.nii, .nii.gz) or "
                              f"MetaImage (.mha, .mhd) volumes or DICOM series folders"
                              + (f"; ignored {len(ignored)} other entries" if ignored else "") + filtered)
        result = DeployResult(failed=dict(plan.failed), ignored=ignored, series=dict(plan.series),
                              skipped=dict(plan.skipped))
        by_stem: dict[str, DeployInput] = {}
        cases: list[DeployInput] = []
        for case in plan.cases:
            if case.name in by_stem:
                ext = ".seg.dcm" if getattr(settings, "output_format", "mhd") == "seg" else ".mhd"
                result.failed[case.key] = (f"output name {case.name}{ext} already used by {by_stem[case.name].key}; "
                                           "rename one of them")
                logger.error("%s skipped: %s", case.describe(), result.failed[case.key])
                continue
            by_stem[case.name] = case
            cases.append(case)
        for case in cases:
            if case.series is not None:
                logger.info("%s <- %s", case.name, case.describe())
        if not cases:
            result.seconds = time.perf_counter() - start
            logger.warning("%s", result.summary())
            return result
        output = _prepare_folder(settings.output, "output")
        writers = _output_writers(app, settings)
        if settings.publish_enabled:
            writers.append(PublishWriter(_prepare_folder(settings.publish, "publish"), app.render_config,
                                         per_case=len(plan.cases) + len(plan.failed) > 1))
        logger.info("%d input(s) in %s -> %s", len(cases), os.path.abspath(settings.input), output)
        staging, ctx, prefetch = None, None, None
        try:
            runs: list[tuple[DeployInput, str]] = []
            for i, case in enumerate(cases):
                if not case.split:
                    runs.append((case, case.path))
                    continue
                # one series of several: its files alone, in a folder named after the output, read as
                # a single-series folder is (same loader, same name for the writers and the publish folder)
                try:
                    if staging is None:
                        staging = tempfile.mkdtemp(prefix="ai4med-deploy-series-")
                    runs.append((case, _stage_series(case, staging, i)))
                except OSError as e:
                    result.failed[case.key] = f"cannot stage the files of {case.describe()}: {e}"
                    logger.error("%s failed: %s", case.key, result.failed[case.key])
            items = [{"image": source} for _, source in runs]
            pipeline = CasePipeline(None, app.inferer, app.pre_transforms, app.post_transforms, writers)
            prefetch = Prefetch(pipeline, items)  # the first cases are read while the model opens (seconds)
            ctx, description = make_context(app, settings)
            result.model = description
            logger.info("model: %s", description)
            _match_nodes(ctx, app.model_config, os.path.join(app.root, MODEL_CONFIG))
            pipeline.context = ctx
            done_cases = run_cases(pipeline, items, output, progress=settings.progress, desc="deploy",
                                   prefetched=prefetch)
        finally:
            if prefetch is not None:
                prefetch.close()
            if ctx is not None:
                ctx.close()
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        for (case, source), done in zip(runs, done_cases):
            if done.error is not None:
                error = done.error.replace(source, case.path) if case.split else done.error
                result.failed[case.key] = error
            else:
                result.written[case.key] = list(done.outputs)
        result.seconds = time.perf_counter() - start
        (logger.warning if result.failed else logger.info)("%s", result.summary())
    return result


def _output_writers(app: DeployApp, settings: DeploySettings) -> list[Any]:
    """The app's writers; `--output_format seg` writes DICOM SEG (`<input name>.seg.dcm`) instead of MetaImage,
    its segments named from model_config.json (`labels` or `output_channel_dict`, `segment_concepts`)."""
    writers = list(app.writers)
    if getattr(settings, "output_format", "mhd") != "seg":
        return writers
    from ai4med.components.writers.dicom_seg import WriteDicomSeg
    from ai4med.components.writers.prediction import MhdWriter

    if any(isinstance(w, WriteDicomSeg) for w in writers):
        return [w for w in writers if not isinstance(w, MhdWriter)]
    mc = app.model_config
    seg = WriteDicomSeg(field="model", labels=mc.get("labels"), output_channel_dict=mc.get("output_channel_dict")
                        if mc.get("labels") is None else None, concepts=mc.get("segment_concepts"))
    return [w for w in writers if not isinstance(w, MhdWriter)] + [seg]


def run_pacs(settings: DeploySettings) -> int:
    """`--dicomweb URL --study UID [--series UID]` (WADO-RS in, the app, STOW-RS out) or `--listen AE:PORT`
    (C-STORE SCP in, the app per study, C-STORE SCU to `--destination`); the app runs with DICOM SEG output."""
    import dataclasses

    from ai4med.deploy.pacs import deploy_dicomweb, listen

    def run_folder(input_dir: str, output_dir: str) -> None:
        res = deploy(dataclasses.replace(settings, input=input_dir, output=output_dir, publish_enabled=False,
                                         output_format="seg"))
        if res.failed or not res.written:
            raise DeployError(f"{input_dir}: " + ("; ".join(f"{k}: {v}" for k, v in res.failed.items())
                                                  or "nothing was segmented"))

    if settings.dicomweb:
        stored = deploy_dicomweb(settings.dicomweb, settings.study, settings.series, run_folder)
        print(f"study {settings.study}: {len(stored)} DICOM SEG object(s) stored on {settings.dicomweb}")
        for uid in stored:
            print(f"  {uid}")
        return EXIT_OK
    ae, port = settings.listen_address
    print(f"listening as {ae} on port {port}; SEGs go to {settings.destination}; spool {settings.spool} "
          "(Ctrl-C to stop)", flush=True)
    listen(ae, port, settings.destination, run_folder, spool=settings.spool)
    return EXIT_OK


# --- the application folder from the base one ---------------------------------------------------
def init_app(folder: str, from_export: str | None = None) -> list[str]:
    """Create an application folder from the base application; returns the files written.

    `config/` files that exist are kept. With `from_export` (an `ai4med export` output folder)
    its `model_config.json` replaces the app's, `model.ts` / `model.onnx` go to `models/`, and
    its `config_inference.json` (the MMAR's validation pre/post transforms and window) is the
    app's config instead of the base application's (CT window -21..189, 1 mm resampling), and
    `config_render.json` gets the model's labels (see `_model_render_config`) instead of the base
    application's liver / tumor.
    """
    folder = os.path.abspath(folder)
    if from_export and not os.path.isdir(from_export):
        raise DeployError(f"export folder not found: {from_export}")
    exported_config = export_inference_config(from_export)
    written = []
    os.makedirs(os.path.join(folder, "config"), exist_ok=True)
    for name in sorted(os.listdir(os.path.join(BASE_APP, "config"))):
        target = os.path.join(folder, "config", name)
        source = os.path.join(BASE_APP, "config", name)
        if target == os.path.join(folder, CONFIG_INFERENCE) and exported_config:
            source = exported_config
        if os.path.exists(target):
            continue
        if target == os.path.join(folder, RENDER_CONFIG) and from_export:
            from ai4med.io.atomic import atomic_write_text

            atomic_write_text(target, json.dumps(_model_render_config(source, from_export), indent=4) + "\n")
        else:
            shutil.copyfile(source, target)
        written.append(target)
    line = _config_origin(os.path.join(folder, CONFIG_INFERENCE), written, exported_config, from_export)
    (logger.info if exported_config or from_export is None else logger.warning)("%s", line)
    if from_export:
        model_config = os.path.join(from_export, "model_config.json")
        check_model_config(_read_json(model_config, "model_config.json"), model_config)
        shutil.copyfile(model_config, os.path.join(folder, MODEL_CONFIG))
        if os.path.join(folder, MODEL_CONFIG) not in written:
            written.append(os.path.join(folder, MODEL_CONFIG))
        models = [n for n in ("model.ts", "model.onnx") if os.path.isfile(os.path.join(from_export, n))]
        if models:
            os.makedirs(os.path.join(folder, "models"), exist_ok=True)
        for n in models:
            shutil.copyfile(os.path.join(from_export, n), os.path.join(folder, "models", n))
            written.append(os.path.join(folder, "models", n))
    return written


_RENDER_COLOURS = [[0.87, 0.53, 0.27], [0.95, 0.15, 0.15], [0.2, 0.75, 0.3], [0.25, 0.45, 0.95],
                   [0.95, 0.85, 0.2], [0.8, 0.3, 0.85]]


def _model_render_config(base_render: str, export_dir: str) -> dict[str, Any]:
    """The base render config with one label per foreground class of the exported model (its
    `output_channel_dict`), named by model_config.json's `labels` ({"1": "spleen"}), else by the
    Decathlon datalist's `labels` of the config the model was trained with, else "label K"."""
    doc = _read_json(base_render, "config_render.json")
    model_config = _read_json(os.path.join(export_dir, "model_config.json"), "model_config.json")
    channels = next(iter((model_config.get("output_channel_dict") or {}).values()), 2)
    names = _label_names(model_config, export_dir)
    doc["labels"] = {str(k): {"name": names.get(str(k), f"label {k}"),
                              "color": _RENDER_COLOURS[(k - 1) % len(_RENDER_COLOURS)], "opacity": 0.6}
                     for k in range(1, max(int(channels), 2))}
    return doc


def _label_names(model_config: dict[str, Any], export_dir: str) -> dict[str, str]:
    labels = model_config.get("labels")
    if not isinstance(labels, dict):
        labels = None
        trained = os.path.join(export_dir, "config_train.json")  # beside a seed-form checkpoint
        try:
            with open(trained, encoding="utf-8") as fh:
                cfg = json.load(fh)
            datalist = cfg["train"]["image_pipeline"]["args"]["data_list_file_path"]
            with open(datalist, encoding="utf-8") as fh:
                labels = json.load(fh).get("labels")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def export_inference_config(export_dir: str | None) -> str | None:
    """The export folder's `config_inference.json` (written by `ai4med export` from the MMAR), checked; else None."""
    if not export_dir:
        return None
    path = os.path.join(export_dir, "config_inference.json")
    if not os.path.isfile(path):
        return None
    doc = _read_json(path, "config_inference.json")
    if not isinstance(doc, dict) or not isinstance(doc.get("pre_transforms"), list) or not doc["pre_transforms"]:
        raise DeployError(f"{path}: not a deploy config (a JSON object with a non-empty pre_transforms list)")
    return os.path.abspath(path)


def _config_origin(target: str, written: Sequence[str], exported: str | None, from_export: str | None) -> str:
    if target not in written:
        return f"{CONFIG_INFERENCE}: kept the existing {target}"
    if exported:
        return f"{CONFIG_INFERENCE}: from the export {exported} (derived from the MMAR's validation section)"
    why = f" ({from_export} has no config_inference.json)" if from_export else ""
    return (f"{CONFIG_INFERENCE}: the base application's{why}: CT window -21..189 and 1 mm resampling; "
            "edit its pre_transforms to match your model's training")


def app_config_origin(folder: str, from_export: str | None, written: Sequence[str]) -> str:
    """One line saying where the app's config_inference.json came from (after `init_app`)."""
    return _config_origin(os.path.join(os.path.abspath(folder), CONFIG_INFERENCE), written,
                          export_inference_config(from_export), from_export)


def check_app(settings: DeploySettings) -> str:
    """`--check`: the app loads, and a local model (if that is what would run) loads; no input, no server."""
    app = load_app(settings.app, settings.overrides)
    from ai4med.inference.loaders import TritonModelLoader, TRTISModelLoader

    uses_triton = settings.triton_url or (
        not settings.model and isinstance(app.model_loader, (TRTISModelLoader, TritonModelLoader)))
    if uses_triton:
        url, protocol, source = _triton_target(app, settings)
        model = f"Triton model {settings.triton_model_name or app.model_config['model_name']!r} at {url} ({protocol}, " \
                f"from {source}; not contacted)"
    else:
        ctx, model = make_context(app, settings)
        _match_nodes(ctx, app.model_config, os.path.join(app.root, MODEL_CONFIG))
        ctx.close()
    return (f"application {app.root} is ready: {len(app.pre_transforms)} pre-transforms, "
            f"{type(app.inferer).__name__} roi {getattr(app.inferer, 'roi_size', None)}, "
            f"{len(app.post_transforms)} post-transforms, {len(app.writers)} writer(s); model: {model}")


def run(args: Any) -> int:
    """The `deploy` command (arguments: `ai4med.deploy.cli_args.add_deploy_args`)."""
    if getattr(args, "init_app", None):
        files = init_app(args.init_app, getattr(args, "from_export", None))
        print(f"application folder {os.path.abspath(args.init_app)}: {len(files)} file(s) written")
        for f in files:
            print(f"  {f}")
        print(app_config_origin(args.init_app, getattr(args, "from_export", None), files))
        return EXIT_OK
    try:
        settings = DeploySettings.resolve(args)
    except ValueError as e:
        raise DeployError(str(e)) from e
    if getattr(args, "check", False):
        print(check_app(settings))
        return EXIT_OK
    if getattr(settings, "dicomweb", None) or getattr(settings, "listen", None):
        return run_pacs(settings)
    result = deploy(settings)
    print(result.summary())
    if not result.written:
        raise DeployError(f"no input could be segmented: {'; '.join(f'{k}: {v}' for k, v in result.failed.items())}")
    return result.exit_code
