"""nbwss-emulator: a NetBackup master server speaking the NBWSS protocol, for testing endpoints.

The package imports nothing heavy at start-up; ``emulator.validate`` and
``emulator.Finding`` load the validation engine on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Finding", "__version__", "validate"]


def __getattr__(name: str) -> Any:
    if name == "validate":
        from emulator.schemas import validate  # noqa: PLC0415 - loaded on first use

        return validate
    if name == "Finding":
        from emulator.findings import Finding  # noqa: PLC0415 - loaded on first use

        return Finding
    raise AttributeError(f"module 'emulator' has no attribute {name!r}")
