"""MultiFieldTransformer: a transform that applies to a list of context fields."""

from __future__ import annotations

from collections.abc import Sequence

from ai4med.components.transforms.transformer import Transformer


class MultiFieldTransformer(Transformer):
    """Base of transforms configured with `fields` (a name or a list of names).

    Example:
        >>> class AddOne(MultiFieldTransformer):
        ...     def transform(self, ctx):
        ...         for f in self.fields:
        ...             img = ctx.get_image(f)
        ...             ctx.set_image(f, img.new_image(img.get_data() + 1))
        ...         return ctx
        >>> AddOne("image").fields
        ['image']
    """

    def __init__(self, fields: str | Sequence[str]) -> None:
        if isinstance(fields, str):
            fields = [fields]
        if not isinstance(fields, Sequence) or not fields or not all(isinstance(f, str) for f in fields):
            raise ValueError(f"fields must be a field name or a non-empty list of names, got {fields!r}")
        super().__init__(fields[0])
        self.fields: list[str] = list(fields)
