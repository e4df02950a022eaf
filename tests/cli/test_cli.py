"""The offline verbs of nbwss-emu: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli as run


def test_scenarios_lists_every_bundled_scenario_with_a_description(capsys) -> None:
    code, out, _ = run(capsys, "scenarios")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) >= 9
    assert any(line.startswith("smoke ") and "(default)" in line for line in lines)
    assert all(len(line.split(None, 1)) == 2 for line in lines)


def test_scenarios_show_prints_the_yaml(capsys) -> None:
    code, out, _ = run(capsys, "scenarios", "show", "vmware-backup")
    assert code == 0 and "policy_type: VMWARE" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["scenarios", "show"], "needs a NAME"),
        (["scenarios", "show", "nope"], "unknown scenario 'nope'"),
        (["scenarios", "smoke"], "invalid choice: 'smoke'"),
        (["scenarios", "list", "smoke"], "did you mean 'scenarios show smoke'"),
        (["generate", "nope"], "unknown scenario 'nope'"),
        (["generate", "--count", "-1"], "--count: must be at least 1"),
        (["generate", "--count", "many"], "not a whole number"),
        (["generate", "--seed", "-3"], "must not be negative"),
        (["generate", "--master", "mars"], "--master 'mars'"),
        (["generate", "--start", "yesterday"], "not a UTC time"),
        (["validate", "/no/such/file.jsonl"], "cannot read"),
        (["frobnicate"], "invalid choice"),
        (["validate"], "the following arguments are required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expected) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("nbwss-emu: error: ") and expected in err, err


def test_generate_writes_valid_json_lines(capsys) -> None:
    code, out, _ = run(capsys, "generate", "smoke", "--seed", "3")
    assert code == 0
    messages = [json.loads(line) for line in out.splitlines()]
    assert messages and all(m["type"] == "NOTIFICATION" and m["subType"] == "REQUEST" for m in messages)


def test_generate_is_reproducible_and_counted(capsys) -> None:
    first = run(capsys, "generate", "restore", "--seed", "8", "--count", "500", "--reproducible-ids")[1]
    second = run(capsys, "generate", "restore", "--seed", "8", "--count", "500", "--reproducible-ids")[1]
    other = run(capsys, "generate", "restore", "--seed", "9", "--count", "500", "--reproducible-ids")[1]
    assert first == second != other
    assert len(first.splitlines()) == 500  # more than one pass of the scenario


def test_generate_ids_are_unique_per_run_unless_asked(capsys) -> None:
    runs = [[json.loads(line) for line in run(capsys, "generate", "restore")[1].splitlines()] for _ in range(2)]
    assert not {m["id"] for m in runs[0]} & {m["id"] for m in runs[1]}
    assert [m["payload"] for m in runs[0]] == [m["payload"] for m in runs[1]]


def test_generate_never_mixes_masters_unmarked(capsys, tmp_path: Path) -> None:
    code, out, err = run(capsys, "generate", "smoke")
    assert code == 0 and "writing master 'primary'" in err and "--master" in err
    assert not any(
        g["data"][0]["jobType"] == "IMPORT" for m in map(json.loads, out.splitlines()) for g in m["payload"] if g["object"] == "JOB"
    )
    code, out, _ = run(capsys, "generate", "smoke", "--master", "all")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and {line["master"] for line in lines} == {"primary", "dr"}
    assert len({line["hostname"] for line in lines}) == 2
    path = tmp_path / "all.jsonl"
    path.write_text(out)
    assert run(capsys, "validate", str(path))[0] == 0  # validate reads marked lines too


def test_validate_warns_on_values_unknown_to_us_and_passes_them(capsys, tmp_path: Path, captures) -> None:
    unknown = json.loads(json.dumps(captures[0]))
    unknown["payload"][0]["data"][0]["scheduleType"] = "ST_SYNTHETIC"
    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps(unknown) + "\n")
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 0
    assert "message 1 (line 1): warning: /payload/0/data/0/scheduleType: 'ST_SYNTHETIC' is unknown to us" in out
    assert "1 valid, 0 with findings (0 findings), 1 warning" in out


def test_generate_filters_by_master_and_moves_the_start(capsys) -> None:
    _, out, _ = run(capsys, "generate", "air-replication", "--master", "dr", "--start", "2026-04-05T08:00:00Z")
    jobs = [g["data"][0] for m in map(json.loads, out.splitlines()) for g in m["payload"] if g["object"] == "JOB"]
    assert jobs and {j["jobType"] for j in jobs} == {"IMPORT"}
    assert min(json.loads(line)["timeStamp"] for line in out.splitlines()) >= 1775376000


def test_generate_from_a_file_with_a_note_for_skipped_steps(capsys, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("description: s\nsteps:\n  - restore: {}\n  - backup: {policy_type: ORACLE}\n")
    code, out, err = run(capsys, "generate", str(path))
    assert code == 0 and out
    assert f"note: {path}:3: steps[0].restore: no restorable image" in err


def test_a_bad_scenario_file_is_exit_2_naming_the_line(capsys, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("description: s\nsteps:\n  - backup: {count: 0}\n")
    code, _, err = run(capsys, "generate", str(path))
    assert code == 2 and f"{path}:3: steps[0].backup.count: 0 is less than the minimum of 1" in err


def test_validate_passes_the_captures(capsys) -> None:
    code, out, _ = run(capsys, "validate", str(Path(__file__).parents[1] / "data" / "captures.jsonl"))
    assert code == 0 and out.strip().endswith("4 messages, 4 valid, 0 with findings (0 findings)")


def test_validate_reports_each_finding_with_index_and_pointer(capsys, tmp_path: Path, captures) -> None:
    broken = json.loads(json.dumps(captures[0]))
    broken["payload"][0]["data"][0]["jobType"] = "teleport"
    del broken["id"]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(m) for m in [captures[1], broken, captures[2]]) + "\n")
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 1
    lines = out.splitlines()
    assert f"{path}: message 2 (line 2): /id: " in lines[0] or f"{path}: message 2 (line 2): /id: " in lines[1]
    assert any("message 2 (line 2): /payload/0/data/0/jobType:" in line and "[pattern]" in line for line in lines)
    assert lines[-1].endswith("3 messages, 2 valid, 1 with findings (2 findings)")


def test_validate_reads_a_json_array_a_pretty_object_and_stdin(capsys, tmp_path: Path, monkeypatch, captures) -> None:
    array = tmp_path / "a.json"
    array.write_text(json.dumps(captures))
    assert run(capsys, "validate", str(array))[0] == 0
    pretty = tmp_path / "p.json"
    pretty.write_text(json.dumps(captures[0], indent=2))
    assert "1 message, 1 valid" in run(capsys, "validate", str(pretty))[1]
    monkeypatch.setattr(sys, "stdin", open(array))  # noqa: SIM115 - closed by pytest's monkeypatch teardown
    assert run(capsys, "validate", "-")[0] == 0
    sys.stdin.close()


def test_validate_a_non_json_line_is_bad_input(capsys, tmp_path: Path, captures) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(captures[0]) + "\n{not json\n")
    code, _, err = run(capsys, "validate", str(path))
    assert code == 2 and f"{path}:2: not JSON" in err and err.count("\n") == 1


def test_validate_an_empty_file_is_bad_input(capsys, tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    code, _, err = run(capsys, "validate", str(path))
    assert code == 2 and "no messages" in err


@pytest.mark.slow
def test_python_dash_m_emulator_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "generate", "smoke", "--count", "2"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    bad = subprocess.run([sys.executable, "-m", "emulator", "generate", "--count", "0"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


@pytest.mark.slow
def test_generate_into_a_closed_pipe_is_quiet() -> None:
    """`nbwss-emu generate datacenter-day | head -1` ends without a traceback."""
    script = f"{sys.executable} -m emulator generate datacenter-day | head -1"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
