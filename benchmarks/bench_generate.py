"""Per-message cost of generate + serialise + validate, against json.dumps of the same message.

Run: python benchmarks/bench_generate.py [--count N] [--later N]

Then, for long runs: the cost per message of a window of --count messages after
--later have been generated, against the first window of the same run, for each
bundled scenario that picks images oldest- or newest-first (a domain's catalog grows
as it goes: picking must not scan it).

Everything is measured in this one run on this machine; the figures that matter
are the ratios to the baseline (the standard library's json.dumps of the very
same messages), which stay comparable across machines.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable

from common import page_of

from emulator.protocol.codec import encode
from emulator.scenario import Timeline, load
from emulator.scenario.model import Scenario
from emulator.schemas import default_schemas


def per_message(work: Callable[[], object], count: int, repeat: int = 5) -> float:
    """Best of ``repeat`` runs, in microseconds per message."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--scenario", default="datacenter-day")
    parser.add_argument("--later", type=int, default=200_000, help="messages generated before the later window")
    args = parser.parse_args()
    scenario = load(args.scenario)
    schemas = default_schemas()

    def generate() -> list[dict]:
        return [t.message for t in itertools.islice(Timeline(scenario, seed=1).messages(repeat=True), args.count)]

    messages = generate()
    count = len(messages)
    items = sum(len(g["data"]) for m in messages for g in m["payload"])

    def everything() -> None:
        for timed in itertools.islice(Timeline(scenario, seed=1).messages(repeat=True), args.count):
            frame = encode(timed.message)
            if schemas.validate(timed.message):
                raise SystemExit("generated an invalid message")
            del frame

    baseline = per_message(lambda: [json.dumps(m) for m in messages], count)
    rows = [
        ("json.dumps (baseline)", baseline),
        ("generate (timeline)", per_message(generate, count, repeat=3)),
        ("serialise (orjson)", per_message(lambda: [encode(m) for m in messages], count)),
        ("validate (jsonschema-rs)", per_message(lambda: [schemas.validate(m) for m in messages], count)),
        ("generate + serialise + validate", per_message(everything, count, repeat=3)),
    ]
    sample = messages[:1000]
    rows.append(
        ("validate (jsonschema, reference)", per_message(lambda: [schemas.validate_reference(m) for m in sample], len(sample), repeat=1))
    )
    print(f"{count} messages of '{args.scenario}' ({items / count:.2f} items per message)")
    print(f"{'step':<34}{'µs/message':>12}{'× baseline':>12}")
    for name, micros in rows:
        print(f"{name:<34}{micros:>12.2f}{micros / baseline:>12.2f}")
    print()
    print(f"long runs: µs/message of {args.count:,} messages after {args.later:,}, against the first {args.count:,}")
    print(f"{'scenario':<20}{'first':>10}{'later':>10}{'later/first':>14}")
    for name in ("smoke", "restore", args.scenario):
        first, later = window_costs(load(name), args.count, args.later)
        print(f"{name:<20}{first:>10.2f}{later:>10.2f}{later / first:>14.2f}")


def window_costs(scenario: Scenario, count: int, later: int) -> tuple[float, float]:
    """µs per message of the first ``count`` messages, and of ``count`` after ``later`` more, in one timeline."""
    messages = Timeline(scenario, seed=1).messages(repeat=True)
    costs = []
    for skip in (0, later):
        for _ in itertools.islice(messages, skip):
            pass
        start = time.perf_counter()
        for _ in itertools.islice(messages, count):
            pass
        costs.append((time.perf_counter() - start) / count * 1e6)
    return costs[0], costs[1]


if __name__ == "__main__":
    with page_of("generate", "Generating notifications: each stage next to json.dumps"):
        main()
