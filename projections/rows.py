"""How a view's rows are kept (pickled) cheaply, and in pieces.

A view with many rows (drivers, rides) keeps them as chunks of ``CHUNK_ROWS`` rows, each
chunk its rows' fields as columns (a list of values per field) pickled on its own
(``rows_to_chunks``): about three times cheaper than pickling each row object (50,000
driver rows: 0.14 s, not 0.43 s), and, one chunk a call, never holding the GIL for more
than a few milliseconds at a time, so the API's event loop runs between chunks while a
serving process keeps its views (``projections.keeper``). A row class is a slots dataclass
rebuilt by position: a field added, removed or moved changes the kept shape, so bump
``projections.store.VIEW_FORMAT``. ``pickled_by_position`` does the same for a row pickled
alone.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")

CHUNK_ROWS = 1_000


def pickled_by_position(cls: type[T]) -> type[T]:
    """A row class pickled as itself and its fields' values in order (not through the
    dataclass's ``__getstate__``, which looks its fields up in Python for every row)."""
    values = attrgetter(*_names(cls))

    def __reduce__(self: Any) -> tuple[type[T], tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls


def rows_to_chunks(rows: Iterable[T], cls: type[T], chunk: int | None = None) -> list[bytes]:
    """The rows as pickled chunks of columns, one pickling a chunk (``chunk`` rows, by
    default ``CHUNK_ROWS``: fewer for rows that hold much, such as a ride's timeline)."""
    chunk = chunk or CHUNK_ROWS
    getters: list[Callable[[T], Any]] = [attrgetter(name) for name in _names(cls)]
    items = list(rows)
    return [
        pickle.dumps([list(map(g, items[i : i + chunk])) for g in getters], protocol=5)
        for i in range(0, len(items), chunk)
    ]


def rows_from_chunks(chunks: Iterable[bytes], cls: type[T]) -> list[T]:
    """The rows ``rows_to_chunks`` kept, in the same order."""
    out: list[T] = []
    for blob in chunks:
        out.extend(map(cls, *pickle.loads(blob)))
    return out


def _names(cls: type[Any]) -> list[str]:
    return [f.name for f in fields(cls)]
