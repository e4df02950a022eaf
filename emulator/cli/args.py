"""Argument types and the argument groups several commands share.

Argument types raise :class:`argparse.ArgumentTypeError`, so the parser reports bad
values itself, naming the option.
"""

from __future__ import annotations

import argparse
import calendar
import time

from emulator.responders import DEFAULT_PROFILE, VERSION_PROFILES
from emulator.scenario.loader import seconds

DEFAULT_SCENARIO = "smoke"


def target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("endpoint (default: the embedded reference endpoint)")
    group.add_argument("--endpoint", metavar="URL", help="the endpoint under test, wss://... (ws:// for local testing)")
    group.add_argument("--token", help="the endpoint's token (default: $NBWSS_TOKEN)")
    group.add_argument("--endpoints", metavar="FILE", help="a registration file: JSON list of {url, token, groupId, priority}")
    group.add_argument("--cafile", help="trust this CA for wss:// (a private CA)")
    group.add_argument("--certfile", help="client certificate for wss://, if the endpoint asks for one")
    group.add_argument("--keyfile", help="the client certificate's private key")
    group.add_argument("--insecure", action="store_true", help="do not verify the endpoint's certificate (warned about)")


def session_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("NBWSS behaviour (nbwss.properties keys; flags override the file)")
    group.add_argument("--properties", metavar="FILE", help="an nbwss.properties file (seconds, but notification.sendTimeout in ms)")
    group.add_argument("--reconnect-period", type=positive_float, help="connectionInfo.period, seconds (default 60)")
    group.add_argument("--resend-interval", type=positive_float, help="notification.scheduledRate, seconds (default 5)")
    group.add_argument(
        "--ack-timeout",
        type=positive_float,
        help="notification.sendTimeout, in seconds here (in ms in a properties file): a later ack is a finding (default 2)",
    )
    group.add_argument("--keepalive", type=positive_float, help="keepAlive.scheduledRate, seconds (default 30)")
    group.add_argument("--max-pong-miss", type=positive, help="keepAlive.maxPongMissAllowed (default 3)")
    group.add_argument(
        "--ignore-decoder",
        action="store_true",
        default=None,
        help="exception.ignoreDecoder=true: keep the connection on undecodable frames",
    )
    group.add_argument("--window", type=positive, default=64, help="notifications awaiting acknowledgement at most (default 64)")
    group.add_argument("--rate", type=positive_float, help="notifications per second instead of as fast as acknowledged")
    group.add_argument(
        "--connect-timeout", type=positive_float, default=10.0, help="seconds for the WebSocket and CONNECT handshakes (default 10)"
    )
    group.add_argument(
        "--nbu-version",
        default=DEFAULT_PROFILE,
        choices=sorted(VERSION_PROFILES),
        help=f"NetBackup version profile (default {DEFAULT_PROFILE})",
    )
    group.add_argument(
        "--compression",
        choices=["deflate"],
        help="offer permessage-deflate to test the endpoint's compressed path (default: off, as NetBackup documents none)",
    )


def report_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reports")
    group.add_argument("--junit", metavar="FILE", help="JUnit XML, one test case per rule")
    group.add_argument("--json", metavar="FILE", help="the verdict, rules and figures as JSON")
    group.add_argument("--transcript", metavar="FILE", help="every frame both ways as JSON Lines (secrets redacted)")
    group.add_argument("--quiet", action="store_true", help="print only the verdict line")


# -- argument types ----------------------------------------------------------------------


def positive(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def duration(text: str) -> float:
    try:
        return seconds(text if not text.replace(".", "", 1).isdigit() else f"{text}s")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration like 30s, 5m or 1h: {text!r}") from None


def port(text: str) -> int:
    value = integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {value}")
    return value


def utc(text: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UTC time like 2026-04-05T08:00:00Z: {text!r}") from None
