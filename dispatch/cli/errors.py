"""How a command fails: one red line on stderr (never wrapped, never read as markup) and an
exit code. ``line_for`` is the one place an error becomes that line; ``ReportingGroup``,
the root command, reports every error no command reported itself (exit code 2).
DISPATCH_DEBUG=1 shows the traceback instead."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from typer.core import TyperGroup

from dispatch.adapters.sqlite.datadir import LogIntegrityError
from dispatch.roads.graph import RoadGraphError

SHOWS_WHERE = " (DISPATCH_DEBUG=1 shows where)"


def say(message: str) -> None:
    """``message`` as one red line on stderr."""
    Console(stderr=True).print(message, style="red", markup=False, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command with ``message`` on stderr and exit code ``code``."""
    say(message)
    raise typer.Exit(code=code)


def line_for(error: Exception, doing: str | None = None) -> str:
    """The line that reports ``error``, raised while ``doing`` something ("start the API")
    or, when None, anywhere in a command.

    - While doing something: ``cannot <doing>: `` and the error (a settings error as its
      problems, never the input);
    - a missing or damaged log (``LogIntegrityError``) names the file itself: its message,
      then the hints added to it as notes; where it was raised only when a library error
      lies beneath (SQLite's, say);
    - anything else: its type and message, and how to see where it was raised.
    """
    told = _told_cause(error)
    if told is not None:  # a library wrapped an error that says what to do
        return f"cannot {doing}: {told}" if doing is not None else f"error: {told}"
    if doing is not None:
        if isinstance(error, ValidationError):
            return f"cannot {doing}: {_problems(error)}"
        return f"cannot {doing}: {type(error).__name__}: {error}"
    if isinstance(error, LogIntegrityError):
        where = SHOWS_WHERE if error.__cause__ is not None else ""
        hints = "".join(f" ({note})" for note in getattr(error, "__notes__", ()))
        return f"error: {error}{where}{hints}"
    return f"error: {type(error).__name__}: {error}{SHOWS_WHERE}"


def _told_cause(error: BaseException) -> RoadGraphError | None:
    """A road-network error a library raised another error from (kafka-python wraps what
    its rebalance callback raised), so the user reads the reason, not the wrapper."""
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, RoadGraphError):
            return cause
        cause = cause.__cause__
    return None


def report(error: Exception, doing: str | None = None) -> NoReturn:
    """End the command with the line for ``error`` and exit code 2 (under DISPATCH_DEBUG,
    raise it)."""
    if os.environ.get("DISPATCH_DEBUG"):
        raise error
    fail(line_for(error, doing))


@contextmanager
def reported(doing: str) -> Iterator[None]:
    """Any error in the block ends the command with ``cannot <doing>: ...`` and exit
    code 2."""
    try:
        yield
    except typer.Exit:
        raise
    except Exception as error:
        report(error, doing)


class ReportingGroup(TyperGroup):
    """The root command: an error a command raised and did not report ends the CLI with its
    line and exit code 2. Typer's own (usage errors, exits, aborts, a closed pipe) are left
    to Typer."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            if _typers_own(error):
                raise
            report(error)


def _typers_own(error: Exception) -> bool:
    if isinstance(error, typer.Exit | typer.Abort | typer.TyperException | EOFError):
        return True
    return isinstance(error, OSError) and error.errno == errno.EPIPE


def _problems(error: ValidationError) -> str:
    return "; ".join(
        str(e["msg"]).removeprefix("Value error, ") for e in error.errors(include_input=False)
    )
