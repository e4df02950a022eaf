"""nbwss-emulator: a NetBackup master server speaking the NBWSS protocol, for testing endpoints."""

from emulator.findings import Finding
from emulator.schemas import validate

__version__ = "0.1.0"

__all__ = ["Finding", "__version__", "validate"]
