"""session-metrics-exporter: instrumented session managers exported to Prometheus."""

__version__ = "0.1.0"
