"""Small helpers the tests share (importable because pytest puts this folder, where conftest.py is, on sys.path)."""

from __future__ import annotations

import socket

import pytest

from emulator.cli import main


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``nbwss-emu argv`` in this process: its exit code, standard output and standard error."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    """A loopback port nothing listens on (the OS's choice, released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
