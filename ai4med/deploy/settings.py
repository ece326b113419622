"""DeploySettings: the deploy app's folders and model connection, from flags, then environment
variables, then defaults (flag > variable > default).

| setting          | flag                | environment variable                          | default             |
|------------------|---------------------|-----------------------------------------------|---------------------|
| application      | `--app`             | AI4MED_DEPLOY_APP                             | bundled base app    |
| input folder     | `--input`           | AI4MED_DEPLOY_INPUT                           | /input              |
| output folder    | `--output`          | AI4MED_DEPLOY_OUTPUT                          | /output             |
| publish folder   | `--publish`         | AI4MED_DEPLOY_PUBLISH                         | /publish            |
| logs folder      | `--logs`            | AI4MED_DEPLOY_LOGS                            | /logs               |
| local model      | `--model`           | AI4MED_DEPLOY_MODEL                           | the config's loader |
| Triton address   | `--triton_url`      | AI4MED_TRITON_URL, NVIDIA_CLARA_TRTISURI      | the config's        |
| Triton protocol  | `--triton_protocol` | AI4MED_TRITON_PROTOCOL                        | URL scheme / config |
| Triton timeout   | `--triton_timeout`  | AI4MED_TRITON_TIMEOUT                         | 10 s                |
| series filter    | `--series_filter`   | AI4MED_DEPLOY_SERIES_FILTER                   | every series        |
| ONNX runtime     | `--runtime`         | AI4MED_DEPLOY_RUNTIME                         | auto (OpenVINO/CPU) |
| precision        | `--precision`       | AI4MED_DEPLOY_PRECISION                       | fp32 (int8: INT8)   |
| DICOMweb root    | `--dicomweb`        | AI4MED_DEPLOY_DICOMWEB                        | none (folders)      |
| DICOM listener   | `--listen AE:PORT`  | AI4MED_DEPLOY_LISTEN                          | none                |
| SEG destination  | `--destination`     | AI4MED_DEPLOY_DESTINATION                     | none                |
| listener spool   | `--spool`           | AI4MED_DEPLOY_SPOOL                           | /spool              |
| output format    | `--output_format`   | AI4MED_DEPLOY_OUTPUT_FORMAT                   | mhd (seg for PACS)  |

`--study` / `--series` (UIDs, with `--dicomweb`) are flags only.

Example:
    >>> s = DeploySettings.resolve({"input": "in"}, env={"NVIDIA_CLARA_TRTISURI": "trtis:8000"})
    >>> s.input, s.output, s.triton_url, s.triton_url_source
    ('in', '/output', 'trtis:8000', 'NVIDIA_CLARA_TRTISURI')
    >>> split_url("grpc://h:8001"), split_url("h:8000")
    (('h:8001', 'grpc'), ('h:8000', None))
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DeploySettings", "split_url", "compile_series_filter", "BASE_APP", "ENV"]

#: the bundled base application folder (its config/ holds the defaults)
BASE_APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

ENV = {
    "app": ("AI4MED_DEPLOY_APP",),
    "input": ("AI4MED_DEPLOY_INPUT",),
    "output": ("AI4MED_DEPLOY_OUTPUT",),
    "publish": ("AI4MED_DEPLOY_PUBLISH",),
    "logs": ("AI4MED_DEPLOY_LOGS",),
    "model": ("AI4MED_DEPLOY_MODEL",),
    "triton_url": ("AI4MED_TRITON_URL", "NVIDIA_CLARA_TRTISURI"),
    "triton_protocol": ("AI4MED_TRITON_PROTOCOL",),
    "triton_timeout": ("AI4MED_TRITON_TIMEOUT",),
    "series_filter": ("AI4MED_DEPLOY_SERIES_FILTER",),
    "runtime": ("AI4MED_DEPLOY_RUNTIME",),
    "precision": ("AI4MED_DEPLOY_PRECISION",),
    "dicomweb": ("AI4MED_DEPLOY_DICOMWEB",),
    "listen": ("AI4MED_DEPLOY_LISTEN",),
    "destination": ("AI4MED_DEPLOY_DESTINATION",),
    "spool": ("AI4MED_DEPLOY_SPOOL",),
    "output_format": ("AI4MED_DEPLOY_OUTPUT_FORMAT",),
}
DEFAULTS: dict[str, Any] = {"app": BASE_APP, "input": "/input", "output": "/output", "publish": "/publish",
                            "logs": "/logs", "triton_timeout": 10.0, "runtime": "auto", "spool": "/spool",
                            "precision": "fp32"}
#: what runs a local ONNX model: auto (OpenVINO on a CPU, else ONNX Runtime), onnxruntime, openvino
RUNTIMES = ("auto", "onnxruntime", "openvino")
#: how a local model runs: fp32 (exact), or int8 (the `ai4med export --int8` model beside it, on OpenVINO)
PRECISIONS = ("fp32", "int8")
#: what the writers produce: MetaImage files, or DICOM SEG objects (of a DICOM input)
OUTPUT_FORMATS = ("mhd", "seg")


def split_url(url: str) -> tuple[str, str | None]:
    """("host:port", protocol or None) of "http://host:port", "grpc://host:port" or "host:port"."""
    url = url.strip()
    for scheme in ("http", "grpc"):
        if url.lower().startswith(scheme + "://"):
            return url[len(scheme) + 3:].rstrip("/"), scheme
    if url.lower().startswith("https://"):
        raise ValueError(f"Triton URL {url!r}: TLS is not supported; give host:port")
    return url.rstrip("/"), None


def compile_series_filter(pattern: str, source: str = "") -> re.Pattern[str]:
    """The series filter as a case-insensitive regular expression; ValueError naming it when invalid."""
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        where = f" ({source})" if source else ""
        raise ValueError(f"series filter {pattern!r}{where} is not a valid regular expression: {e}") from e


@dataclass
class DeploySettings:
    """What the app runs with; `<name>_source` says where each value came from (flag, a variable, default)."""

    app: str = BASE_APP
    input: str = "/input"
    output: str = "/output"
    publish: str = "/publish"
    logs: str = "/logs"
    model: str | None = None
    triton_url: str | None = None
    triton_protocol: str | None = None
    triton_timeout: float = 10.0
    series_filter: str | None = None
    runtime: str = "auto"
    precision: str = "fp32"
    dicomweb: str | None = None
    study: str | None = None
    series: str | None = None
    listen: str | None = None
    destination: str | None = None
    spool: str = "/spool"
    output_format: str = "mhd"
    triton_model_name: str | None = None
    device: str | None = None
    publish_enabled: bool = True
    progress: bool | None = None
    overrides: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def series_pattern(self) -> re.Pattern[str] | None:
        """`series_filter` compiled (case-insensitive), None when no filter is set."""
        return compile_series_filter(self.series_filter, self.sources.get("series_filter", "")) \
            if self.series_filter else None

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """(AE title, port) of `--listen AE:PORT`, None when not listening."""
        if not self.listen:
            return None
        ae, _, port = self.listen.rpartition(":")
        return ae, int(port)

    @property
    def triton_url_source(self) -> str:
        return self.sources.get("triton_url", "")

    @property
    def model_source(self) -> str:
        return self.sources.get("model", "")

    @classmethod
    def resolve(cls, flags: Mapping[str, Any] | Any, env: Mapping[str, str] | None = None) -> DeploySettings:
        """Settings from parsed flags (a namespace or a dict) and the environment (default `os.environ`)."""
        env = os.environ if env is None else env
        given = flags if isinstance(flags, Mapping) else vars(flags)
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, variables in ENV.items():
            if given.get(name) not in (None, ""):
                values[name], sources[name] = given[name], "flag --" + name
                continue
            for var in variables:
                if env.get(var):
                    values[name], sources[name] = env[var], var
                    break
            else:
                if name in DEFAULTS:
                    values[name], sources[name] = DEFAULTS[name], "default"
        values["triton_timeout"] = float(values.get("triton_timeout", DEFAULTS["triton_timeout"]))
        if values.get("triton_url"):
            url, scheme = split_url(str(values["triton_url"]))
            values["triton_url"] = url
            if scheme and not values.get("triton_protocol"):
                values["triton_protocol"], sources["triton_protocol"] = scheme, sources["triton_url"]
        if values.get("triton_protocol"):
            proto = str(values["triton_protocol"]).lower()
            if proto not in ("http", "grpc"):
                raise ValueError(f"Triton protocol must be http or grpc, got {values['triton_protocol']!r} "
                                 f"({sources.get('triton_protocol')})")
            values["triton_protocol"] = proto
        runtime = str(values.get("runtime", "auto")).strip().lower()
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {values['runtime']!r} "
                             f"({sources.get('runtime')})")
        values["runtime"] = runtime
        precision = str(values.get("precision", "fp32")).strip().lower()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {values['precision']!r} "
                             f"({sources.get('precision')})")
        values["precision"] = precision
        if values.get("series_filter"):
            compile_series_filter(str(values["series_filter"]), sources.get("series_filter", ""))
        _check_pacs(values, sources, given)
        overrides = list(given.get("overrides_set") or []) + list(given.get("overrides") or [])
        return cls(
            **values,
            study=given.get("study") or None,
            series=given.get("series") or None,
            triton_model_name=given.get("triton_model_name"),
            device=given.get("device"),
            publish_enabled=not given.get("no_publish", False),
            progress=False if given.get("no_progress") else None,
            overrides=overrides,
            sources=sources,
        )


def _check_pacs(values: dict[str, Any], sources: dict[str, str], given: Mapping[str, Any]) -> None:
    """The PACS flags fit together: --dicomweb needs --study, --listen is AE:PORT with a --destination."""
    from ai4med.errors import UserError
    from ai4med.pacs.dimse import parse_ae_address

    study, series = given.get("study"), given.get("series")
    if values.get("dicomweb") and values.get("listen"):
        raise ValueError("--dicomweb and --listen are two ways to get studies; give one")
    if values.get("dicomweb"):
        if not str(values["dicomweb"]).startswith(("http://", "https://")):
            raise ValueError(f"DICOMweb URL must start with http:// or https://, got {values['dicomweb']!r} "
                             f"({sources['dicomweb']})")
        if not study:
            raise ValueError(f"--dicomweb {values['dicomweb']} needs --study UID (the StudyInstanceUID to segment)")
    elif study or series:
        raise ValueError("--study / --series name a study on a DICOMweb server: give --dicomweb URL too")
    if values.get("listen"):
        ae, sep, port = str(values["listen"]).rpartition(":")
        if not sep or not 0 < len(ae) <= 16 or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--listen must be AE_TITLE:PORT (AE title up to 16 characters), got "
                             f"{values['listen']!r} ({sources['listen']})")
        if not values.get("destination"):
            raise ValueError("--listen needs --destination AE@HOST:PORT, where the SEG of each study is sent")
    if values.get("destination"):
        try:
            parse_ae_address(str(values["destination"]))
        except UserError as exc:
            raise ValueError(f"{exc} ({sources['destination']})") from exc
    fmt = values.get("output_format")
    if fmt is None:
        fmt = "seg" if values.get("dicomweb") or values.get("listen") else "mhd"
        values["output_format"], sources["output_format"] = fmt, "default"
    fmt = str(fmt).strip().lower()
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, got {values['output_format']!r} "
                         f"({sources.get('output_format')})")
    if fmt != "seg" and (values.get("dicomweb") or values.get("listen")):
        raise ValueError(f"--output_format {fmt}: a PACS gets its results back as DICOM SEG; use --output_format seg")
    values["output_format"] = fmt
