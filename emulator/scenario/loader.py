"""Reading scenario files: YAML, checked against ``schemas/scenario.json``.

Errors name the file, the line and the field, e.g.
``smoke.yaml:12: steps[2].backup.count: -1 is less than the minimum of 1``.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import jsonschema
import yaml

from emulator.domain import vocabulary
from emulator.domain.status import REALISTIC_FAILURE_RATE
from emulator.exceptions import ScenarioError
from emulator.resources import scenarios_dir
from emulator.scenario.model import DEFAULT_START, MasterSpec, Scenario, Step
from emulator.schemas import default_schemas

STEP_KINDS = ("backup", "fail", "restore", "expire", "replicate", "cleanup", "duplicate", "catalog_backup", "wait", "repeat")
#: Data items per message when a scenario does not say: NBWSS sends a cycle's events together (the cap is ours).
DEFAULT_MAX_ITEMS = 100
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")


def bundled() -> dict[str, Path]:
    """The bundled scenarios by name."""
    return {path.stem: path for path in sorted(scenarios_dir().glob("*.yaml"))}


def resolve(name_or_path: str) -> Path:
    """The file of a bundled scenario name, or the given path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ScenarioError(f"{name_or_path}: no such scenario file")
        return path
    found = bundled().get(name_or_path)
    if found is None:
        raise ScenarioError(f"unknown scenario {name_or_path!r}; bundled: {', '.join(bundled())}")
    return found


def load(name_or_path: str) -> Scenario:
    """Load a bundled scenario by name or a scenario file by path."""
    path = resolve(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    return parse(text, str(path), default_name=path.stem)


def parse(text: str, source: str = "<scenario>", *, default_name: str = "scenario") -> Scenario:
    """Parse and check scenario text; ``source`` names it in errors."""
    try:
        document = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ScenarioError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(document, dict):
        raise ScenarioError(f"{source}:1: a scenario must be a YAML mapping with description and steps")
    assert root is not None  # the text is a mapping, so it composes to a node
    _check_schema(document, root, source)
    return _build(document, root, source, default_name)


# -- checking ----------------------------------------------------------------------


def _check_schema(document: dict[str, Any], root: yaml.Node, source: str) -> None:
    validator = default_schemas().reference_validator("scenario.json")
    error = jsonschema.exceptions.best_match(validator.iter_errors(document), key=_relevance)
    if error is None:
        return
    path = list(error.absolute_path)
    message = error.message
    unexpected = _unexpected(error)
    if unexpected is not None:
        path.append(unexpected)
        if len(path) >= 2 and path[-3:-1] and isinstance(path[-2], int) and path[-3] in ("steps",):
            message = f"unknown step {unexpected!r} (expected one of {', '.join(STEP_KINDS)})"
        else:
            message = f"unknown field {unexpected!r}"
    elif error.validator == "not" and isinstance(error.instance, dict):
        message = "give only one of every, rate and over"
    raise ScenarioError(f"{source}:{_line(root, path)}: {field_name(path) or '(top level)'}: {message}")


def _relevance(error: jsonschema.ValidationError) -> tuple[int, ...]:
    # Prefer the deepest error, and an unknown key over a cascade of oneOf/anyOf noise.
    weak = error.validator in ("oneOf", "anyOf", "minProperties", "maxProperties")
    return (len(error.absolute_path), 0 if weak else 1)


def _unexpected(error: jsonschema.ValidationError) -> str | None:
    if error.validator not in ("additionalProperties", "unevaluatedProperties"):
        return None
    if not isinstance(error.instance, dict):
        return None
    schema = cast("dict[str, Any]", error.schema)
    known = set(schema.get("properties", {}))
    for sub in schema.get("allOf", []):
        known |= set(_deref(sub).get("properties", {}))
    extra = [key for key in error.instance if key not in known]
    return extra[0] if extra else None


def _deref(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return cast("dict[str, Any]", default_schemas().documents["scenario.json"]["$defs"][ref.rsplit("/", 1)[1]])
    return schema


def field_name(path: Sequence[str | int]) -> str:
    """``['steps', 2, 'backup', 'count']`` as ``steps[2].backup.count``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line(root: yaml.Node, path: Sequence[str | int]) -> int:
    """The 1-based line of the value at ``path`` (of its key, for a mapping member)."""
    node = root
    line = node.start_mark.line
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node, line = value, key.start_mark.line
                    break
            else:
                return line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


# -- building ----------------------------------------------------------------------


def seconds(value: int | float | str) -> float:
    """A scenario duration in seconds (an int, or a string such as ``10m``)."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def per_second(rate: str) -> float:
    """A scenario rate such as ``30/m`` in operations per second."""
    number, unit = rate.split("/")
    return float(number) / _UNITS[unit]


def _build(document: dict[str, Any], root: yaml.Node, source: str, default_name: str) -> Scenario:
    masters_doc = document.get("masters") or {"primary": {}}
    masters = tuple(
        MasterSpec(
            key=key,
            hostname=spec.get("hostname"),
            environment=spec.get("environment", None if "clients" in spec else "small"),
            clients=dict(spec.get("clients", {})),
            clock_offset_hours=spec.get("timezone_offset_hours", 0),
            replicate_to=spec.get("replicate_to"),
        )
        for key, spec in masters_doc.items()
    )
    keys = {m.key for m in masters}
    known = set(vocabulary.values("policyType"))
    for key, spec in masters_doc.items():
        for policy_type in spec.get("clients", {}):
            if policy_type not in known:  # possible in traffic, but the emulator only builds domains of types it knows
                path = ["masters", key, "clients", policy_type]
                raise ScenarioError(f"{source}:{_line(root, path)}: {field_name(path)}: unknown policy type {policy_type!r}")
    for spec in masters:
        if spec.replicate_to is not None and spec.replicate_to not in keys | {spec.key}:
            path = ["masters", spec.key, "replicate_to"]
            raise ScenarioError(f"{source}:{_line(root, path)}: {field_name(path)}: no master {spec.replicate_to!r}")
        if spec.replicate_to == spec.key:
            path = ["masters", spec.key, "replicate_to"]
            raise ScenarioError(f"{source}:{_line(root, path)}: {field_name(path)}: a master cannot replicate to itself")
    failures = document.get("failures", "realistic")
    if failures == "none":
        scale = 0.0
    elif failures == "realistic":
        scale = 1.0
    else:
        scale = failures["rate"] / REALISTIC_FAILURE_RATE
    batch = document.get("batch", {})
    start = document.get("start", DEFAULT_START)
    try:
        start_epoch = calendar.timegm(time.strptime(start, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        path = ["start"]
        raise ScenarioError(f"{source}:{_line(root, path)}: start: not a date and time: {start!r}") from None
    steps = _steps(document["steps"], ["steps"], root, source, keys)
    return Scenario(
        name=document.get("name", default_name),
        description=document["description"],
        source=source,
        seed=document.get("seed", 0),
        start=float(start_epoch),
        cycle=seconds(batch.get("cycle", 5)),
        max_items=batch.get("max_items", DEFAULT_MAX_ITEMS),
        failures=scale,
        masters=masters,
        steps=steps,
    )


def _steps(items: list[dict[str, Any]], path: list[str | int], root: yaml.Node, source: str, masters: set[str]) -> tuple[Step, ...]:
    steps = []
    for index, item in enumerate(items):
        ((kind, options),) = item.items()
        here = [*path, index, kind]
        where = f"{source}:{_line(root, here)}"
        label = field_name(here)
        for ref in ("master", "to"):
            if isinstance(options, dict) and ref in options and options[ref] not in masters:
                raise ScenarioError(f"{where}: {label}.{ref}: no master {options[ref]!r} (masters: {', '.join(sorted(masters))})")
        if kind == "repeat":
            inner = _steps(options["steps"], [*here, "steps"], root, source, masters)
            steps.append(
                Step(
                    kind,
                    where,
                    label,
                    {"times": options["times"], "every": seconds(options["every"]) if "every" in options else None},
                    inner,
                )
            )
        elif kind == "wait":
            steps.append(Step(kind, where, label, {"seconds": seconds(options)}))
        else:
            opts = dict(options or {})
            policy_type = opts.get("policy_type")
            if policy_type is not None and policy_type not in vocabulary.values("policyType"):
                raise ScenarioError(f"{where}: {label}.policy_type: unknown policy type {policy_type!r}")
            if opts.get("protection_plan") and opts.get("policy_type", "VMWARE") != "VMWARE":
                raise ScenarioError(f"{where}: {label}.protection_plan: only VMware policies run as protection plans")
            count = opts.get("count", 1)
            if "every" in opts:
                spacing = seconds(opts.pop("every"))
            elif "rate" in opts:
                spacing = 1 / per_second(opts.pop("rate"))
            elif "over" in opts:
                spacing = seconds(opts.pop("over")) / count
            else:
                spacing = 0.0
            opts["spacing"] = spacing
            opts["count"] = count
            steps.append(Step(kind, where, label, opts))
    return tuple(steps)
