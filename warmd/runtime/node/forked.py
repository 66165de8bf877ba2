"""Serialise a big state without stalling the event loop: in a forked child, as Redis does.

`fork()` gives the child a copy-on-write image of the state as it is at that instant, so
the parent applies new entries while the child encodes (or hashes) the old view and hands
the bytes back in an unlinked temporary file (read back in one allocation, off the loop:
joining pipe chunks would copy the whole snapshot under the GIL). The parent's cost is the fork itself (copying page tables,
a few milliseconds per hundred megabytes); a thread would not do, since encoding holds the
GIL for its whole length. The child runs only `produce` and leaves with `os._exit`: no
event loop, no logging, no atexit handlers of the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Callable
from typing import BinaryIO

from warmd.errors import WarmdError


class ForkedJobFailed(WarmdError):
    """The child died or could not produce its bytes (the message says how)."""


class ForkedJob:
    """One child producing bytes; `await result()` once."""

    def __init__(self, pid: int, output: BinaryIO) -> None:
        self.pid = pid
        self._output = output

    async def result(self) -> bytes:
        """The child's bytes, read and reaped in threads (the loop stays free).

        Raises:
            ForkedJobFailed: the child exited with an error or was killed.
        """
        try:
            _, status = await asyncio.to_thread(os.waitpid, self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                raise ForkedJobFailed(f"snapshot child {self.pid} exited with {code}")
            return await asyncio.to_thread(_read_back, self._output)
        except asyncio.CancelledError:
            self.kill()
            raise
        finally:
            self._output.close()


    def kill(self) -> None:
        """Stop the child (a cancelled snapshot) and reap it; the reading thread then sees
        the pipe close and ends."""
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def start_forked(produce: Callable[[], bytes]) -> ForkedJob:
    """Fork now (the child sees the state as of this call) and let it run `produce`.

    Raises:
        OSError: the fork or the pipe failed (no memory, too many processes).
    """
    # Unlinked, so nothing is left behind; ForkedJob.result() closes it.
    output = tempfile.TemporaryFile(prefix="warmd-snapshot-")  # noqa: SIM115
    try:
        pid = os.fork()
    except OSError:
        output.close()
        raise
    if pid == 0:  # the child
        _child(produce, output.fileno())
    return ForkedJob(pid, output)


def _child(produce: Callable[[], bytes], fd: int) -> None:
    code = 1
    try:
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)  # the parent's handlers are not ours
        view = memoryview(produce())
        while view:
            view = view[os.write(fd, view):]
        code = 0
    finally:
        os._exit(code)


def _read_back(output: BinaryIO) -> bytes:
    """The child's bytes: the file's size is known, so one read fills one allocation."""
    output.seek(0)
    return output.read()
