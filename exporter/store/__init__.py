"""The key-value store: a memory tier in front of Redis (standalone, Sentinel, Cluster), with
fallback during outages, a crash-safe journal, failback with replay, recovery of the fleet, and
coherent memory tiers across replicas. `tiered_store.TieredStore` is the façade.

Knows nothing of Figma or HTTP, and of sessions only their key prefix (misses of session keys
are authoritative; `session_index` counts their expiries across replicas): the session manager,
the Figma response cache and the shared event stream build on it. Imports only `exporter.core`.
"""
