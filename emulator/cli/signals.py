"""SIGINT and SIGTERM, handled once for every long-running command.

A command runs its asyncio work under :class:`Interrupt`: the first signal calls the
command's ``on_signal`` (which stops its work so that it can still report), and
:meth:`Interrupt.exit_code` turns the signal into the shell's exit code afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable


class Interrupt:
    """Which signal stopped the command, if any."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self, on_signal: Callable[[], None]) -> None:
        """Call ``on_signal`` on SIGINT or SIGTERM (from within the running event loop)."""
        loop = asyncio.get_running_loop()

        def handler(signum: int) -> None:
            if self.signum is None:
                self.signum = signum
            on_signal()

        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, handler, signum)

    def exit_code(self) -> int | None:
        """128 + the signal (130 for SIGINT, 143 for SIGTERM) after saying so, or None."""
        if self.signum is None:
            return None
        print(f"nbwss-emu: interrupted by {signal.Signals(self.signum).name}", file=sys.stderr)
        return 128 + self.signum
