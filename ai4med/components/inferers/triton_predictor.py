"""Triton back-end: `TritonInferenceContext` (a tritonclient HTTP or gRPC client bound to one
model) and `TritonPredictor`.

tritonclient is imported when a context is created. The context checks the server and
reads the model's metadata at construction, within `timeout` seconds, and raises a
`TritonUnavailableError` naming the URL and protocol when that fails.

Example (needs a running server):
    >>> ctx = TritonInferenceContext("segmentation", url="localhost:8000")  # doctest: +SKIP
    >>> TritonPredictor().predict({"image": volume}, "CDHW", ctx)["pred"].shape  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.inference_context import InferenceContext, Shape
from ai4med.components.inferers.layout import as_shape_format, from_nc, to_nc, to_numpy
from ai4med.components.inferers.predictor import Predictor
from ai4med.components.inferers.torch_predictor import select_inputs
from ai4med.errors import UserError

PROTOCOLS = {"http": ("tritonclient.http", 8000), "grpc": ("tritonclient.grpc", 8001)}
_NP_TO_TRITON = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "int64": "INT64", "int32": "INT32",
                 "int8": "INT8", "uint8": "UINT8", "bool": "BOOL"}


class TritonUnavailableError(ConnectionError, UserError):
    """The Triton server or model cannot be reached or used (the CLI prints the message, no traceback)."""


def import_client(protocol: str) -> Any:
    """The tritonclient module for "http" or "grpc", with an install hint when missing."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    try:
        return importlib.import_module(PROTOCOLS[protocol][0])
    except ImportError as e:
        raise ImportError(f"the Triton back-end needs tritonclient: pip install 'tritonclient[{protocol}]'") from e


class TritonInferenceContext(InferenceContext):
    """A model served by Triton Inference Server.

    Args:
        model_name: the model's name in the server's repository.
        url: "host:port" (default port 8000 for http, 8001 for grpc).
        protocol: "http" or "grpc".
        model_version: "" for the server's choice.
        timeout: seconds allowed for connecting and for each request.
    """

    def __init__(
        self,
        model_name: str,
        url: str = "localhost:8000",
        protocol: str = "http",
        model_version: str = "",
        timeout: float = 10.0,
    ) -> None:
        self.module = import_client(protocol)
        self.model_name, self.url, self.protocol = model_name, url, protocol
        self.model_version, self.timeout = str(model_version), float(timeout)
        self.client = self._connect()
        meta = self._call("read metadata of model " + repr(model_name), self._metadata)
        self.meta_inputs = {i["name"]: i for i in meta["inputs"]}
        self.meta_outputs = {o["name"]: o for o in meta["outputs"]}
        super().__init__(list(self.meta_inputs), list(self.meta_outputs))

    def _connect(self) -> Any:
        if self.protocol == "http":
            client = self.module.InferenceServerClient(
                self.url, connection_timeout=self.timeout, network_timeout=self.timeout
            )
        else:
            client = self.module.InferenceServerClient(self.url)
        live = self._call("reach the server", lambda: self._timed(client.is_server_live))
        if not live:
            raise TritonUnavailableError(
                f"Triton server at {self.url} ({self.protocol}) is unreachable or not live "
                f"(timeout {self.timeout:g} s)"
            )
        return client

    def _timed(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout
        return fn(*args, **kwargs)

    def _metadata(self) -> dict[str, Any]:
        kwargs = {"as_json": True} if self.protocol == "grpc" else {}
        return self._timed(self.client.get_model_metadata, self.model_name, self.model_version, **kwargs)

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except TritonUnavailableError:
            raise
        except Exception as e:  # tritonclient raises several transport-specific types
            raise TritonUnavailableError(
                f"could not {what}: Triton server {self.url} ({self.protocol}, timeout {self.timeout:g} s): {e}"
            ) from e

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
            self.client = None

    def get_model_input_shapes(self) -> dict[str, Shape]:
        return {k: _shape(v["shape"]) for k, v in self.meta_inputs.items()}

    def get_model_output_shapes(self) -> dict[str, Shape]:
        return {k: _shape(v["shape"]) for k, v in self.meta_outputs.items()}

    def run(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for `N C *spatial` arrays (cast to each input's declared datatype)."""
        if self.client is None:
            raise RuntimeError("inference context is closed")
        values = dict(zip(self.input_names, inputs)) | {k: np.asarray(v) for k, v in self.extra_input_values.items()}
        requests = []
        for name, x in values.items():
            dtype = self.meta_inputs.get(name, {}).get("datatype") or _NP_TO_TRITON[np.asarray(x).dtype.name]
            x = np.ascontiguousarray(x, dtype=_numpy_dtype(dtype))
            req = self.module.InferInput(name, list(x.shape), dtype)
            req.set_data_from_numpy(x)
            requests.append(req)
        names = self.fetch_names()
        outputs = [self.module.InferRequestedOutput(n) for n in names]
        result = self._call(
            f"run model {self.model_name!r}",
            lambda: self._timed(self.client.infer, self.model_name, requests, self.model_version, outputs=outputs),
        )
        return {n: result.as_numpy(n) for n in names}


class TritonPredictor(Predictor):
    """Runs a `TritonInferenceContext`; takes and returns numpy arrays."""

    context_type = TritonInferenceContext

    def predict(
        self,
        model_input_values: dict[str, Any],
        input_shape_format: ShapeFormat | str,
        inference_ctx: TritonInferenceContext,
    ) -> dict[str, Any]:
        self.check_context(inference_ctx)
        sf = as_shape_format(input_shape_format)
        values = select_inputs(model_input_values, inference_ctx.input_names)
        out = inference_ctx.run([to_nc(to_numpy(v), sf) for v in values])
        return {k: from_nc(v, sf) for k, v in out.items()}


def _shape(dims: Any) -> Shape:
    return tuple(None if int(d) < 0 else int(d) for d in dims)


def _numpy_dtype(triton_dtype: str) -> np.dtype:
    reverse = {v: k for k, v in _NP_TO_TRITON.items()}
    return np.dtype(reverse.get(triton_dtype, "float32"))


class FailFastTritonContext(TritonInferenceContext):
    """A Triton context that, once the server has failed a request, fails the next ones at
    once (so a server lost in the middle of a run costs one timeout, not one per case)."""

    _failure: str | None = None

    def run(self, inputs: list[Any]) -> dict[str, Any]:
        if self._failure is not None:
            raise TritonUnavailableError(f"Triton server lost earlier in this run: {self._failure}")
        try:
            return super().run(inputs)
        except TritonUnavailableError as e:
            self._failure = str(e)
            raise
