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
}
DEFAULTS: dict[str, Any] = {"app": BASE_APP, "input": "/input", "output": "/output", "publish": "/publish",
                            "logs": "/logs", "triton_timeout": 10.0, "runtime": "auto"}
#: what runs a local ONNX model: auto (OpenVINO on a CPU, else ONNX Runtime), onnxruntime, openvino
RUNTIMES = ("auto", "onnxruntime", "openvino")


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
        if values.get("series_filter"):
            compile_series_filter(str(values["series_filter"]), sources.get("series_filter", ""))
        overrides = list(given.get("overrides_set") or []) + list(given.get("overrides") or [])
        return cls(
            **values,
            triton_model_name=given.get("triton_model_name"),
            device=given.get("device"),
            publish_enabled=not given.get("no_publish", False),
            progress=False if given.get("no_progress") else None,
            overrides=overrides,
            sources=sources,
        )
