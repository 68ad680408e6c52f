"""What a Lambda container builds once, on first use, and keeps: the verifier, the compliance function."""

from __future__ import annotations

import threading
from collections.abc import Callable


class PerContainer[T]:
    """`build()` run once, on the first call, its result kept until `cache_clear()` (tests, a new container).

    Unlike functools.cache, concurrent first calls (a threaded local gateway, a burst in one process) wait for
    one build instead of each making their own: two verifiers would mean two role caches, each reading IAM.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._built: T | None = None
        self._lock = threading.Lock()
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__

    def __call__(self) -> T:
        built = self._built
        if built is not None:
            return built
        with self._lock:
            if self._built is None:
                self._built = self._build()
            return self._built

    def cache_clear(self) -> None:
        with self._lock:
            self._built = None


def per_container[T](build: Callable[[], T]) -> PerContainer[T]:
    return PerContainer(build)
