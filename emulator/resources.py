"""Where the schemas and the bundled scenarios live.

In an installed wheel they sit inside the package (``emulator/schemas``,
``emulator/scenarios``); in a source checkout they are the top-level
``schemas/`` and ``scenarios/`` folders beside the package.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {name}/ folder is missing from this installation")


@cache
def schemas_dir() -> Path:
    """The folder holding the JSON Schema files."""
    return _locate("schemas")


@cache
def scenarios_dir() -> Path:
    """The folder holding the bundled scenario files."""
    return _locate("scenarios")
