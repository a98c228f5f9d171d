"""Run a function in a thread of its own and take its result later: what the plugins use of
``concurrent.futures``, without its import (it pulls in ``logging``) on every glidein start.

The thread runs in a copy of the caller's context, so trace lines keep their phase and plugin.
Whatever it runs is bounded by its own timeouts (``commands``): nothing here waits forever
unless the function does.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Pending(Generic[T]):
    """``function(*args)`` running; ``result()`` waits for it, then returns or re-raises."""

    def __init__(self, function: Callable[..., T], *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        context = contextvars.copy_context()

        def target() -> None:
            try:
                self._value = context.run(function, *args)
            except BaseException as exc:  # handed to whoever takes the result
                self._error = exc

        self._thread = threading.Thread(target=target, name=getattr(function, "__name__", "?"),
                                        daemon=True)
        self._thread.start()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]
