"""Foundations: what every layer above uses, with no I/O of its own to orchestrate.

Errors, settings (declared once: flags, environment, YAML, the README's table), the fleet clock,
metric families, the event log, operation instrumentation and window statistics, redaction of
secrets, task helpers. Imports nothing else of `exporter` (tests/unit/test_imports.py).
"""
