"""``projections.background.Background`` in a forked child: the job runs on the child's
copy of the process (copy-on-write, so as it was at the fork), with its own GIL and a lower
CPU priority, while the parent goes on serving; the parent polls for the result.

Rules the child keeps, because other threads of the parent may hold locks at the fork
(Python's, SQLite's, the views' lock): the job only computes (it takes no lock, opens no
file or connection, writes no log); the child writes the job's bytes to a file the parent
opened before the fork (an unlinked temporary file: nothing is left behind whatever ends
either process) and leaves with ``os._exit``, running no exit handler and closing nothing
of the parent's. A child that does not end within ``timeout_s`` is killed (``SIGKILL``: the
parent's Python signal handlers are the child's too, and would not stop it). Memory: the
pages either process writes while the child runs are copied, up to the size of what the
job reads.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import IO, NoReturn

from projections.background import Background, Job, JobFailed

_OK, _RAISED = b"\x00", b"\x01"
_PR_SET_PDEATHSIG = 1
_MAX_FD = 1 << 20  # closerange's end: every descriptor a process can have open here
# Python 3.12+ warns at every fork of a process with threads; this child computes only
# (the module's rules), so the warning says nothing here, and raised (-W error) it would
# come after the child exists.
warnings.filterwarnings(
    "ignore", message=r".*use of fork\(\) may lead to deadlocks", category=DeprecationWarning
)


class ForkedBackground(Background):
    def __init__(
        self,
        timeout_s: float = 600.0,
        nice: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"a job's time must be positive, not {timeout_s}")
        self.timeout_s, self.nice, self.clock = timeout_s, nice, clock

    def start(self, job: Callable[[], bytes]) -> Job:
        if not hasattr(os, "fork"):
            raise JobFailed("this platform cannot fork")
        try:
            out = _result_file()
        except OSError as error:
            raise JobFailed(f"no file for the child's result: {error}") from error
        parent, pid = os.getpid(), -1
        try:
            pid = os.fork()
            if pid == 0:
                _run_child(job, out.fileno(), self.nice, parent)
            return _ForkedJob(pid, out, self.clock() + self.timeout_s, self.timeout_s,
                              self.clock)  # fmt: skip
        except BaseException as error:  # no child left behind, nor its file
            if pid > 0:
                _ForkedJob(pid, out, 0.0, 0.0, self.clock).cancel()
            else:
                out.close()
            if isinstance(error, Exception):
                raise JobFailed(f"could not fork: {error!r}") from error
            raise


def _result_file() -> IO[bytes]:
    """A file in memory where the platform has one (Linux's ``memfd_create``: no temporary
    folder needed), else an unlinked temporary file: nothing is left behind either way."""
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create("dispatch-background", os.MFD_CLOEXEC), "w+b")
    return tempfile.TemporaryFile()


def _run_child(job: Callable[[], bytes], fd: int, nice: int, parent: int) -> NoReturn:
    code = 70  # EX_SOFTWARE: the result could not be written
    try:
        gc.disable()  # a short life: no collection pauses
        _die_with(parent)
        # Not the parent's sockets and files: a restarted server can bind its port at once.
        os.closerange(3, fd)
        os.closerange(fd + 1, _MAX_FD)
        if nice:
            os.nice(nice)
        try:
            data = _OK + job()
        except BaseException as error:  # told to the parent, which decides
            data = _RAISED + repr(error).encode("utf-8", "replace")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        code = 0
    finally:
        os._exit(code)


class _ForkedJob(Job):
    def __init__(
        self,
        pid: int,
        out: IO[bytes],
        deadline: float,
        timeout_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.pid, self._out, self._deadline = pid, out, deadline
        self._timeout_s, self._clock = timeout_s, clock
        self._ended = False

    def result(self) -> bytes | None:
        if self._ended:
            raise JobFailed("the result was taken already, or the job cancelled")
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            if self._clock() > self._deadline:
                self.cancel()
                raise JobFailed(f"the child ran past {self._timeout_s:g} s and was killed")
            return None
        self._ended = True
        try:
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                raise JobFailed(f"the child ended with {_describe(code)}")
            self._out.seek(0)
            head = self._out.read(1)
            data = self._out.read()
        finally:
            self._out.close()
        if head == _OK:
            return data
        if head == _RAISED:
            raise JobFailed(f"the job raised {data.decode('utf-8', 'replace')}")
        raise JobFailed("the child ended without writing a result")

    def cancel(self) -> None:
        if self._ended:
            return
        self._ended = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self._out.close()


def _die_with(parent: int) -> None:
    """Be killed if the thread that forked goes (Linux: ``PR_SET_PDEATHSIG``), and be the
    process the kernel kills first when memory runs out; leave at once if the parent has
    gone already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's timeout still holds
        pass
    if os.getppid() != parent:
        os._exit(75)  # EX_TEMPFAIL: nobody waits for the result
    with contextlib.suppress(OSError):
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, b"1000")
        finally:
            os.close(fd)


def _describe(code: int) -> str:
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"
