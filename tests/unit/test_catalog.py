"""The catalog of managers and services is consistent with the vocabularies derived from it."""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry

from exporter.core.catalog import MANAGERS, SERVICES, ManagerName, ServiceName, manager
from exporter.core.metrics import Metrics
from exporter.core.vocabulary import HEALTH_ISSUE_CODES
from exporter.monitoring import payloads
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


def test_the_json_payloads_have_one_field_per_declared_manager_and_service() -> None:
    # The JSON contract spells the names out (clients read them, OpenAPI requires them): a
    # service or manager added to the catalog must appear there too (docs/upstreams.md).
    services = get_args(ServiceName)
    managers = get_args(ManagerName)
    assert payloads.Services.__struct_fields__ == services
    for struct in (
        payloads.ManagersHealth,
        payloads.ManagersCache,
        payloads.ManagersPerformance,
        payloads.ManagersRates,
    ):
        assert struct.__struct_fields__ == managers, struct.__name__
    assert payloads.HealthComponents.__struct_fields__ == (*managers, "overall")
