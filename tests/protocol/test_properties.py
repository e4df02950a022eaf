"""nbwss.properties: NetBackup's keys and units (seconds, but notification.sendTimeout in milliseconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.protocol.properties import UNITS, NbwssProperties, PropertiesError


def test_send_timeout_is_milliseconds_in_the_file_and_seconds_in_python(tmp_path: Path) -> None:
    path = tmp_path / "nbwss.properties"
    path.write_text("notification.sendTimeout=2000\nnotification.scheduledRate=5\nconnectionInfo.period=60\n")
    properties = NbwssProperties.from_file(path)
    assert (properties.send_timeout, properties.resend_interval, properties.connection_period) == (2.0, 5.0, 60.0)
    assert properties.warnings() == []
    assert UNITS["notification.sendTimeout"] == "ms" and UNITS["notification.scheduledRate"] == "s"


def test_a_send_timeout_under_50_ms_is_warned_about_with_its_unit(tmp_path: Path) -> None:
    path = tmp_path / "nbwss.properties"
    path.write_text("notification.sendTimeout=2\n")  # meant as 2 s, read as documented: 2 ms
    (warning,) = NbwssProperties.from_file(path).warnings()
    assert "notification.sendTimeout is 2 ms" in warning and "milliseconds" in warning
    assert NbwssProperties(send_timeout=0.05).warnings() == []


def test_a_bad_value_names_the_unit(tmp_path: Path) -> None:
    path = tmp_path / "nbwss.properties"
    path.write_text("notification.sendTimeout=-1\n")
    with pytest.raises(PropertiesError, match=r"nbwss.properties:1: notification.sendTimeout: must be positive, not -1 \(unit: ms\)"):
        NbwssProperties.from_file(path)


def test_run_warns_and_its_late_finding_shows_the_limit_with_its_unit(capsys, tmp_path: Path) -> None:
    path = tmp_path / "nbwss.properties"
    path.write_text("notification.sendTimeout=40\n")
    report = tmp_path / "report.json"
    code = main(["run", "--properties", str(path), "--fault", "late-ack", "--no-probes", "--quiet", "--json", str(report)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "warning: notification.sendTimeout is 40 ms" in err
    text = report.read_text()
    assert "notification.sendTimeout is 40 ms" in text, json.loads(text)
