"""`mmd serve-venue`: a loopback venue speaking the Bybit V5 public protocol over recordings."""

from mmd.venue.faults import FAULT_KINDS, GARBAGE_FRAME, parse_faults
from mmd.venue.server import VenueServer, serve

__all__ = ["FAULT_KINDS", "GARBAGE_FRAME", "VenueServer", "parse_faults", "serve"]
