"""Shared test helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def captures() -> list[dict[str, Any]]:
    """The real NBWSS captures of the user's source document."""
    return [json.loads(line) for line in (DATA / "captures.jsonl").read_text().splitlines() if line.strip()]
