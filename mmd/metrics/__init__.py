"""Every Prometheus metric (`mmd_*`) and the HTTP endpoints /metrics, /healthz, /readyz.

Nobody else creates metrics. Counters that change per frame live as plain ints in the core
(MarketHub) and are read here at scrape time, so the hot path never touches prometheus_client.
"""

from mmd.metrics.registry import Metrics
from mmd.metrics.server import HttpServer, LoopMonitor

__all__ = ["HttpServer", "LoopMonitor", "Metrics"]
