"""Plain data shared by every ring: codes, instruments, events."""
