"""Live progress of a load run on a terminal (rich); plain lines elsewhere."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table


class LiveProgress:
    """A table refreshed once a second: elapsed, rates, outstanding, p50/p99, errors."""

    def __init__(self, console: Console, masters: int, rate: float | None) -> None:
        self._title = f"nbwss-emu load: {masters} masters, " + (f"open model, {rate:g}/s" if rate else "closed model")
        # Refreshed on each update (once a second), not by a thread of its own: a load run forks its generator and
        # endpoint only from a process with one thread (see emulator.load.children).
        self._live = Live(self._table(None), console=console, auto_refresh=False, transient=False)

    def _table(self, snapshot: dict[str, Any] | None) -> Table:
        table = Table(title=self._title, title_justify="left")
        for column in ("elapsed", "sent/s", "acked/s", "outstanding", "p50 ms", "p99 ms", "errors"):
            table.add_column(column, justify="right")
        if snapshot is not None:
            latency = snapshot["latency_ms"]
            table.add_row(
                f"{snapshot['elapsed']:.0f} s",
                str(snapshot["sent_per_s"]),
                str(snapshot["acked_per_s"]),
                str(snapshot["outstanding"]),
                f"{latency['p50']:.1f}" if latency["p50"] is not None else "-",
                f"{latency['p99']:.1f}" if latency["p99"] is not None else "-",
                str(snapshot["errors"]),
            )
        return table

    def update(self, snapshot: dict[str, Any]) -> None:
        self._live.update(self._table(snapshot), refresh=True)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._live.__exit__(kind, error, trace)
