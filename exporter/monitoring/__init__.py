"""The SessionMetricsService and what it publishes: the health score, rolling statistics and
snapshots, the JSON bodies of the API, the events shared across replicas and their live fan-out
to SSE clients, and the composition root (`runtime`) that builds one exporter's components.
Nothing here knows HTTP (`exporter.web` does).
"""
