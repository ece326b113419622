"""GraphComponent: the base of everything that takes part in building a training step."""

from __future__ import annotations

from typing import Any

from ai4med.common.build_ctx import BuildContext


class GraphComponent:
    """A component that is configured in `__init__` and wired in `build(build_ctx)`.

    Clara separated configuration (static JSON args) from graph building; ai4med keeps
    the split: constructors take only config values, `build` sees the step's context.
    """

    def __init__(self) -> None:
        pass

    def build(self, build_ctx: BuildContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement build()")
