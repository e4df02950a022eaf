"""The emulated master over websockets' synchronous client (threads, or greenlets under gevent as in Locust)."""

from emulator.sync.master import ConnectError, GaveUp, Sample, SyncMaster, TokenRefused
from emulator.sync.policy import Backoff

__all__ = ["Backoff", "ConnectError", "GaveUp", "Sample", "SyncMaster", "TokenRefused"]
