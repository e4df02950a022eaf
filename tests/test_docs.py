"""The documentation cannot drift: the public API is documented, the reference pages cover the code, every page is reachable."""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import emulator
from emulator.cli.app import build_parser
from emulator.contract import RULES
from emulator.resources import schemas_dir
from emulator.scenario import bundled

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    """``docs/gen_reference.py``, the script MkDocs runs to write the reference pages."""
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_names() -> list[str]:
    return [name for name in emulator.__all__ if name != "__version__"]


def test_all_is_the_table_of_public_names_and_each_resolves() -> None:
    assert set(emulator.__all__) == {"__version__", *emulator._WHERE}
    namespace: dict[str, Any] = {}
    exec("from emulator import *", namespace)  # what a user's star import gets
    assert set(public_names()) <= set(namespace)


def test_every_public_name_has_a_docstring_of_its_own() -> None:
    for name in public_names():
        value = getattr(emulator, name)
        if name == "RULES":
            continue  # a tuple: documented by the string after its assignment, which the next test sees on the page
        doc = inspect.getdoc(value) or ""
        assert doc and not doc.startswith(f"{value.__name__}("), f"{name} has no docstring (a dataclass's generated signature is not one)"


def test_every_public_name_is_on_the_api_page() -> None:
    directives = set(re.findall(r"^::: (\S+)$", (DOCS / "api.md").read_text(encoding="utf-8"), re.M))
    for name in public_names():
        where = emulator._WHERE[name]
        module, attribute = where if isinstance(where, tuple) else (where, name)
        assert f"{module}.{attribute}" in directives, f"{name} is public but not on docs/api.md"
    assert '"""Every rule' in (ROOT / "emulator" / "contract" / "rules.py").read_text(encoding="utf-8")


def test_importing_the_package_loads_nothing_heavy() -> None:
    probe = "import sys, emulator; print(sorted(m for m in sys.modules if m.startswith(('emulator.', 'websockets', 'jsonschema'))))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                for sub in command._actions:
                    if not isinstance(sub, argparse._HelpAction):
                        yield name, command, sub


def test_the_command_reference_has_every_command_and_option(gen: ModuleType) -> None:
    page = gen.commands_page()
    seen = 0
    for name, _, action in options(build_parser()):
        section = page[page.index(f"\n## {name}\n") :]
        section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
        for option in action.option_strings or [action.metavar or action.dest]:
            assert f"`{option}" in section, f"{name} {option} is missing from the command reference"
        if action.help:
            assert " ".join(action.help.split())[:20].replace("|", "\\|") in section or "%(" in action.help
        seen += 1
    assert seen > 40  # every family's options, not an empty parser
    assert "`-h, --help`" not in page


def test_the_rule_reference_has_every_rule_in_order(gen: ModuleType) -> None:
    page = gen.rules_page()
    positions = [page.index(f"| `{rule.id}` |") for rule in RULES]
    assert positions == sorted(positions)
    assert all(" ".join(rule.description.split()) in page for rule in RULES)


def schema_fields(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        yield from node.get("properties", {})
        for value in node.values():
            yield from schema_fields(value)
    elif isinstance(node, list):
        for value in node:
            yield from schema_fields(value)


def test_the_scenario_file_reference_has_every_field_and_definition(gen: ModuleType) -> None:
    schema = json.loads((schemas_dir() / "scenario.json").read_text(encoding="utf-8"))
    page = gen.scenario_file_page()
    for field in set(schema_fields(schema)):
        assert re.search(rf"\| `([\w.]+\.)?{field}`", page), field
    for name in schema["$defs"]:
        assert f"## {name} {{#{name.lower()}}}" in page, name


def test_the_bundled_scenarios_page_lists_each(gen: ModuleType) -> None:
    page = gen.scenarios_page()
    assert all(f"| `{name}` |" in page for name in bundled())


def nav_pages(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from nav_pages(value)


def test_every_page_is_in_the_navigation_and_the_generated_ones_too(gen: ModuleType) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = set(nav_pages(config["nav"]))
    on_disk = {str(page.relative_to(DOCS)) for page in DOCS.rglob("*.md")}
    assert on_disk - nav == set(), "pages no one can reach from the navigation"
    assert set(gen.PAGES) <= nav
    assert "docs/gen_reference.py" in config["plugins"][1]["gen-files"]["scripts"]


def test_the_readme_is_short_and_its_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 160
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link
