"""`mmd serve-venue`: a loopback venue speaking the Bybit V5 public protocol over recordings."""

from mmd.venue.bybit_server import FAULT_KINDS, VenueServer, parse_faults, serve

__all__ = ["FAULT_KINDS", "VenueServer", "parse_faults", "serve"]
