"""The processes a load run starts (its generator, the reference endpoint), forked when that is safe.

A new interpreter spends a second or more importing this package before it can do
anything (more on a busy machine), and a run would wait for it. A fork of the
running process has everything imported already: its child starts work at once.
Forking is safe only in a process with one thread (the calling one, the main
thread); otherwise the child is a new interpreter, as ``python -m ...``.

Either way a child talks over its stdin and stdout and ends at its stdin's end,
so it never outlives the run, however the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

#: Descriptors of the pipes to children, on this side: a child forked later closes them, so that
#: it holds no other child's stdin open (that child would then never see its end).
_OURS: set[int] = set()


class Child:
    """A child process with pipes to its stdin and from its stdout."""

    def __init__(
        self, pid: int, stdin: asyncio.StreamWriter, stdout: asyncio.StreamReader, forked: bool, fds: tuple[int, ...] = ()
    ) -> None:
        self.pid = pid
        self.fds = fds  # this side's ends of the pipes
        self.stdin = stdin
        self.stdout = stdout
        self.forked = forked
        self.returncode: int | None = None

    def _poll(self) -> bool:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                self.returncode = 0
                return True
            if pid == 0:
                return False
            self.returncode = os.waitstatus_to_exitcode(status)
        return True

    async def wait(self, timeout: float) -> None:
        """Close its stdin (its end), wait up to ``timeout`` seconds for it to end, then kill it."""
        self.stdin.close()
        deadline = time.monotonic() + timeout
        while not self._poll():
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                deadline = float("inf")
            await asyncio.sleep(0.01)
        _OURS.difference_update(self.fds)
        with contextlib.suppress(Exception):  # what it wrote last is nobody's now; the pipe closes at its end
            await asyncio.wait_for(self.stdout.read(), 0.5)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)


def can_fork() -> bool:
    """Whether forking this process is safe: only the main thread runs (and the OS has fork)."""
    return hasattr(os, "fork") and threading.current_thread() is threading.main_thread() and threading.active_count() == 1


async def start(work: Callable[[int, int], None], module: list[str]) -> Child:
    """A child running ``work(stdin_fd, stdout_fd)`` in a fork, or ``python -m <module...>`` where forking is not safe."""
    loop = asyncio.get_running_loop()
    if not can_fork():
        return await _spawn(module)
    child_in, parent_in = os.pipe()
    parent_out, child_out = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the work, never return into the parent's code
        code = 0
        try:
            os.close(parent_in)
            os.close(parent_out)
            for fd in _OURS:
                with contextlib.suppress(OSError):
                    os.close(fd)
            signal.set_wakeup_fd(-1)  # the parent's loop's: a signal here must not wake it
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends us through stdin
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            gc.freeze()  # what came from the parent is not the child's garbage: its collections need not walk it
            work(child_in, child_out)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(child_in)
    os.close(child_out)
    _OURS.update((parent_in, parent_out))
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(parent_out, "rb", 0))
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, os.fdopen(parent_in, "wb", 0))
    return Child(pid, asyncio.StreamWriter(transport, protocol, None, loop), reader, forked=True, fds=(parent_in, parent_out))


async def _spawn(module: list[str]) -> Child:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *module, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26
    )
    assert process.stdin is not None and process.stdout is not None
    child = _Spawned(process.pid, process.stdin, process.stdout, forked=False)
    child.process = process
    return child


class _Spawned(Child):
    """A child that is a new interpreter: asyncio watches it."""

    process: asyncio.subprocess.Process

    def _poll(self) -> bool:
        self.returncode = self.process.returncode
        return self.returncode is not None

    async def wait(self, timeout: float) -> None:
        self.stdin.close()
        try:
            await asyncio.wait_for(self.process.communicate(), timeout)  # communicate closes the pipes too
        except TimeoutError:
            self.process.kill()
            await self.process.communicate()
        self.returncode = self.process.returncode
