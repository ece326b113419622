"""Cooperative cancellation of long computations: a hook that loops call between units of work.

The annotation server runs each request under `cancellation(check)`, where `check` raises
when the client has gone, the request's time limit has passed or the server is stopping
(and waits while a higher-priority request uses the device). Loops over many units of
work (the scan-window inferer's batches) call `check_cancelled()` between units; outside
such a scope it does nothing. A context variable, so concurrent threads never see each
other's checks.

Example:
    >>> def stop():
    ...     raise TimeoutError("too long")
    >>> check_cancelled()  # no scope: nothing happens
    >>> with cancellation(stop):
    ...     try:
    ...         check_cancelled()
    ...     except TimeoutError as e:
    ...         print(e)
    too long
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

__all__ = ["check_cancelled", "cancellation"]

_CHECK: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("ai4med_cancel_check",
                                                                                 default=None)


def check_cancelled() -> None:
    """Run the current scope's check (it raises to stop the computation); no-op outside a scope."""
    check = _CHECK.get()
    if check is not None:
        check()


@contextlib.contextmanager
def cancellation(check: Callable[[], None]) -> Iterator[None]:
    """Within the block, `check_cancelled()` calls `check`."""
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)
