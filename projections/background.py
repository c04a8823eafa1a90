"""The port a serving process runs a long computation through without sharing the GIL with
its event loop: ``Background.start(job)`` begins the job (a function that returns bytes and
does no I/O) and the ``Job`` is polled for its result.

Keeping the views encodes every view (0.4-0.9 s of CPU for 50,000 drivers): run on the
folding thread, that time is taken from the GIL the API's event loop needs, and requests
wait behind it (docs/BENCHMARKS.md, "The API's tail"). ``InlineBackground`` runs the job at
once on the caller's thread (the reference, and the fallback); the adapter in
``dispatch.adapters.posix`` runs it in a forked child, which sees the views as they were at
the fork while the parent goes on folding.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable


class JobFailed(Exception):
    """The job raised, was killed, or ran past its time; the message says which."""


class Job(ABC):
    @abstractmethod
    def result(self) -> bytes | None:
        """The job's bytes once it has ended, None while it runs; ``JobFailed`` when it
        failed (asked again after an answer: ``JobFailed``, the result is given once)."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the job and release what it holds (nothing when it has ended)."""


class Background(ABC):
    @abstractmethod
    def start(self, job: Callable[[], bytes]) -> Job:
        """Begin ``job``; ``JobFailed`` when it cannot be begun."""


class _Done(Job):
    def __init__(self, value: bytes | None, error: str | None) -> None:
        self._value, self._error, self._taken = value, error, False

    def result(self) -> bytes | None:
        if self._taken:
            raise JobFailed("the result was taken already")
        self._taken = True
        if self._error is not None:
            raise JobFailed(self._error)
        return self._value

    def cancel(self) -> None:
        self._taken = True


class InlineBackground(Background):
    """Runs the job at ``start``, on the caller's thread."""

    def start(self, job: Callable[[], bytes]) -> Job:
        try:
            return _Done(job(), None)
        except Exception as error:
            return _Done(None, f"the job raised {error!r}")
