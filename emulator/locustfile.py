"""A ready locustfile: every Locust user is an emulated NetBackup master.

    locust -f "$(nbwss-emu locustfile)" --host wss://endpoint.example/nbwss --nbwss-token ... \\
        [--nbwss-scenario datacenter-day] [--master | --worker ...]
"""

from emulator.locust import NbwssUser


class NetBackupMaster(NbwssUser):
    """One master per user, its own domain and connection."""
