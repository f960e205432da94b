"""The catalog of managers and services is consistent with the vocabularies derived from it."""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry

from exporter.core.catalog import MANAGERS, SERVICES, ManagerName, ServiceName, manager
from exporter.core.metrics import Metrics
from exporter.core.vocabulary import HEALTH_ISSUE_CODES
from exporter.monitoring.health import ROW_OF, ComponentInputs, HealthThresholds, assess


def test_every_declared_name_has_exactly_one_spec() -> None:
    assert tuple(spec.name for spec in MANAGERS) == get_args(ManagerName)
    assert tuple(spec.name for spec in SERVICES) == get_args(ServiceName)


def test_each_service_belongs_to_the_manager_that_lists_it() -> None:
    for spec in SERVICES:
        assert spec.name in manager(spec.manager).services
        assert spec.down_issue in HEALTH_ISSUE_CODES
        assert ROW_OF[spec.down_issue] == spec.name


def test_every_service_and_endpoint_is_a_series_at_zero() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    for spec in SERVICES:
        assert (
            registry.get_sample_value("session_exporter_upstream_enabled", {"service": spec.name})
            == 0
        )
        for endpoint in spec.endpoints:
            labels = {"service": spec.name, "endpoint": endpoint, "status": "2xx"}
            assert (
                registry.get_sample_value("session_exporter_upstream_requests_total", labels) == 0
            )


def test_a_down_service_costs_its_declared_penalty_unless_overridden() -> None:
    for spec in SERVICES:
        inputs = {spec.manager: ComponentInputs(services={spec.name: "down"})}
        assert assess(inputs).overall.score == 100 - spec.down_penalty
        halved = HealthThresholds.from_overrides({spec.penalty_key: spec.down_penalty / 2})
        assert assess(inputs, halved).overall.score == 100 - spec.down_penalty / 2
