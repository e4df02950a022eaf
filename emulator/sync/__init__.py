"""The emulated master over websockets' synchronous client (threads, or greenlets under gevent as in Locust)."""

from emulator.sync.master import (
    ConnectError,
    GaveUp,
    Notification,
    PreparedNotification,
    Sample,
    SyncMaster,
    TokenRefused,
    prepare,
    sample_name,
)

__all__ = [
    "ConnectError",
    "GaveUp",
    "Notification",
    "PreparedNotification",
    "Sample",
    "SyncMaster",
    "TokenRefused",
    "prepare",
    "sample_name",
]
