"""Metric: a validation metric = a MetricList + the context field it reads (seed 002)."""

from __future__ import annotations

from typing import Any

from ai4med.libs.metrics.metric_list import MetricList


class Metric:
    """Binds a `MetricList` to the field whose values it collects.

    Args:
        metric_list: the list that collects and reduces values.
        field: the name of the value (aux-op output or transform-context field) to collect.
        do_summary: write the reduced value to TensorBoard.
        do_print: print the reduced value to the console.
        is_key_metric: the metric that selects the best checkpoint.
    """

    def __init__(
        self,
        metric_list: MetricList,
        field: str,
        do_summary: bool = True,
        do_print: bool = True,
        is_key_metric: bool = False,
    ) -> None:
        if not isinstance(metric_list, MetricList):
            raise TypeError(f"metric_list must be a MetricList, got {type(metric_list).__name__}")
        self.metric_list = metric_list
        self.field = field
        self.do_summary = do_summary
        self.do_print = do_print
        self._is_key_metric = is_key_metric

    def get_name(self) -> str:
        return self.metric_list.get_name()

    def get_field(self) -> str:
        return self.field

    def is_key_metric(self) -> bool:
        return self._is_key_metric

    def update(self, value: Any, label: str | None = None) -> None:
        self.metric_list.update(value, label)

    def get(self) -> Any:
        return self.metric_list.get()

    def reset(self) -> None:
        self.metric_list.reset()

    def write_reports(self, path: str | None = None) -> list[str]:
        return self.metric_list.write_reports(path)
