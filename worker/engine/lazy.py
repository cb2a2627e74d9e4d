"""`lazy`: a cached property without functools.cached_property's per-access lock.

Python 3.11's functools.cached_property takes an RLock on every first access, which costs more than
most of the facts it caches; the rule engine computes dozens per claim on one thread, so a plain
compute-once descriptor is enough.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class lazy(Generic[T]):
    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> lazy[T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> T | lazy[T]:
        if instance is None:
            return self
        value = self.compute(instance)
        # A non-data descriptor: from now on the instance attribute answers without calling us.
        instance.__dict__[self.name] = value
        return value
