"""Market data in: codec, book sync, websocket and REST clients, recordings, replay, synthetic."""
