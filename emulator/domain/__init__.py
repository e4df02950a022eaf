"""The emulated NetBackup domain: plain objects and the operations that change them.

Nothing here touches the network or the wall clock: time comes from an injected
:class:`~emulator.domain.clock.Scheduler`, and every change that NetBackup would
report over NBWSS is recorded as a :class:`~emulator.domain.notifications.Notification`.
"""

from emulator.domain.clock import Scheduler
from emulator.domain.master import MasterServer
from emulator.domain.model import Client, Image, ImageCopy, Job, Policy, Schedule
from emulator.domain.notifications import Notification

__all__ = [
    "Client",
    "Image",
    "ImageCopy",
    "Job",
    "MasterServer",
    "Notification",
    "Policy",
    "Schedule",
    "Scheduler",
]
