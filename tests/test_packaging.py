"""A plain (non-editable) install carries the schemas and bundled scenarios inside the package."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    builders = pytest.importorskip("hatchling.builders.wheel")
    out = tmp_path_factory.mktemp("dist")
    return Path(next(builders.WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"])))


def test_the_wheel_holds_package_schemas_and_scenarios(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for schema in (ROOT / "schemas").glob("*.json"):
        assert f"emulator/schemas/{schema.name}" in names
    for scenario in (ROOT / "scenarios").glob("*.yaml"):
        assert f"emulator/scenarios/{scenario.name}" in names
    assert "emulator/cli/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nbwss-emu = emulator.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_wheel_is_marked_typed(wheel: Path) -> None:
    """PEP 561: with py.typed in the wheel, users' type checkers read the package's annotations."""
    assert "emulator/py.typed" in zipfile.ZipFile(wheel).namelist()


@pytest.mark.slow
def test_a_fresh_virtual_environment_finds_them_inside_the_package(wheel: Path, tmp_path: Path) -> None:
    """Installed without the source tree, the resources resolve inside site-packages."""
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True, cwd=tmp_path)
    # resources.py needs nothing beyond the standard library, so no network is needed for this check.
    probe = "from emulator.resources import schemas_dir, scenarios_dir; print(schemas_dir()); print(scenarios_dir())"
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schemas, scenarios = (Path(line) for line in result.stdout.splitlines())
    assert "site-packages" in schemas.parts
    assert (schemas / "notification-request.json").is_file()
    assert (scenarios / "smoke.yaml").is_file()
