"""Transformer: the base of every transform (single-field or multi-field)."""

from __future__ import annotations

from ai4med.common.transform_ctx import TransformContext


class Transformer:
    """Base class: `transform(ctx) -> ctx`, and `is_deterministic()` for the smart cache.

    Pipelines cache the outputs of the longest prefix of deterministic transforms, so a
    transform that draws random numbers must return False from `is_deterministic`.

    Args:
        field: the context field this transform works on (single-field transforms).
    """

    def __init__(self, field: str | None = None) -> None:
        self.field = field

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        raise NotImplementedError(f"{type(self).__name__} does not implement transform()")

    def is_deterministic(self) -> bool:
        return True

    def get_name(self) -> str:
        return type(self).__name__

    def __call__(self, transform_ctx: TransformContext) -> TransformContext:
        return self.transform(transform_ctx)
