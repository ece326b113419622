"""BuildContext: what has been built so far, handed to models, losses and aux-ops.

In Clara's TF world this held placeholders; here it holds the batch tensors, the
`is_train` flag, the learning rate and the data properties of the current step.
"""

from __future__ import annotations

from typing import Any


class BuildContext:
    """A small typed dictionary with the seed's KEY_* names.

    Example:
        >>> ctx = BuildContext()
        >>> ctx.set(BuildContext.KEY_IS_TRAIN, True)
        >>> ctx.must_get(BuildContext.KEY_IS_TRAIN)
        True
    """

    KEY_MODEL_INPUT = "model_input"
    KEY_LABEL_INPUT = "label_input"
    KEY_IS_TRAIN = "is_train"
    KEY_DATA_PROP = "data_property"
    KEY_LEARNING_RATE = "learning_rate"
    KEY_MODEL = "model"
    KEY_PREDICTIONS = "predictions"
    KEY_LOSS = "loss"
    KEY_GLOBAL_STEP = "global_step"
    KEY_EPOCH = "epoch"
    KEY_DEVICE = "device"

    def __init__(self, items: dict[str, Any] | None = None) -> None:
        self._items: dict[str, Any] = dict(items or {})

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._items[key] = value

    def must_get(self, key: str) -> Any:
        """The value of `key`; raises KeyError naming the key and what is available."""
        if key not in self._items:
            raise KeyError(
                f"BuildContext has no {key!r}; available keys: {sorted(self._items) or 'none'}"
            )
        return self._items[key]

    def has(self, key: str) -> bool:
        return key in self._items

    def keys(self) -> list[str]:
        return list(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __getitem__(self, key: str) -> Any:
        return self.must_get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._items[key] = value
