"""The paper exchange: latency, fees and queue-aware matching of our quotes against real data.

Pure core: no clock reads, no I/O; time arrives as arguments (exchange ns).
"""
