"""The reference endpoint: the cloud side of NBWSS, done right, with switchable faults."""

from emulator.endpoint.core import EndpointSession
from emulator.endpoint.server import Fault, ReferenceEndpoint

__all__ = ["EndpointSession", "Fault", "ReferenceEndpoint"]
