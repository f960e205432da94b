"""The session managers and the upstream services the exporter knows, each declared once.

Metric label values (`manager`, `operation`, `service`, `endpoint`), the health table's
per-service rows and default penalties, the probes' deadlines, the JSON payloads' per-service
fields, the alerting rules and the dashboard's panels are all derived from these declarations.
docs/upstreams.md says which other modules an added service touches.

    >>> [spec.name for spec in SERVICES]
    ['redis', 'figma_api', 'mcp_server']
    >>> service("mcp_server").display_name, service("mcp_server").manager
    ('MCP server', 'figma')
    >>> manager("figma").services
    ('figma_api', 'mcp_server')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from exporter.core.settings import Settings

ManagerName = Literal["session", "figma"]
ServiceName = Literal["redis", "figma_api", "mcp_server"]
# The health issue of each service while it is down (part of vocabulary.HealthIssueCode).
ServiceDownCode = Literal["redis_down", "figma_api_down", "mcp_server_down"]


@dataclass(frozen=True, slots=True)
class ManagerSpec:
    """A session manager: its operations (latency, error and slow-operation series) and the
    services it calls. An `optional` manager is disabled when none of its services is configured;
    the session manager never is (its memory tier needs nothing)."""

    name: ManagerName
    display_name: str
    operations: tuple[str, ...]
    services: tuple[ServiceName, ...]
    optional: bool


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """An upstream service: what it is called, which manager calls it, the endpoints its request
    metrics label, the health issue and default penalty while it is down, when it is configured,
    and how long a probe of it may take."""

    name: ServiceName
    display_name: str
    manager: ManagerName
    endpoints: tuple[str, ...]
    down_issue: ServiceDownCode
    down_penalty: float
    enabled: Callable[[Settings], bool]
    probe_timeout: Callable[[Settings], float]
    # What users notice while it is down: the health issue's message and the alert say it.
    down_impact: str
    # Alerted on its probe (`SessionExporter<Name>Down`, mixin/rules.py); Redis is alerted on
    # the store's own view of it instead (`SessionExporterRedisUnreachable`).
    probe_alert: bool = True

    @property
    def camel_name(self) -> str:
        """`figma_api` -> `FigmaApi`: the alert's name is `SessionExporter<camel_name>Down`."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    @property
    def penalty_key(self) -> str:
        """The `--health-thresholds` key that overrides the down penalty."""
        return f"{self.name}_down_penalty"


MANAGERS: tuple[ManagerSpec, ...] = (
    ManagerSpec(
        "session",
        "Session manager",
        ("create", "get", "update", "delete", "expire"),
        ("redis",),
        optional=False,
    ),
    ManagerSpec(
        "figma",
        "Figma session manager",
        ("file", "nodes", "screenshot"),
        ("figma_api", "mcp_server"),
        optional=True,
    ),
)

# A probe's deadline is a little over the client's own timeout, so that the client's typed error
# (with its reason) normally wins over the probe's generic one.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "redis",
        "Redis",
        "session",
        (),  # Redis calls are measured by the store's own metrics
        "redis_down",
        30,
        enabled=lambda s: s.redis_url is not None,
        probe_timeout=lambda s: max(s.redis_timeout * 4, 1.0),
        down_impact="sessions are served from the memory fallback",
        probe_alert=False,
    ),
    ServiceSpec(
        "figma_api",
        "Figma API",
        "figma",
        ("files", "nodes", "images", "image_download", "meta", "me"),
        "figma_api_down",
        20,
        enabled=lambda s: s.figma_enabled,
        probe_timeout=lambda s: s.figma_timeout + 1.0,
        down_impact="Figma files, nodes and API screenshots are served only from the cache;"
        " uncached requests fail",
    ),
    ServiceSpec(
        "mcp_server",
        "MCP server",
        "figma",
        (
            "initialize",
            "list_tools",
            "get_screenshot",
            "get_metadata",
            "get_design_context",  # the Dev Mode server's name for what was get_code
            "get_variable_defs",
            "other_tool",
        ),
        "mcp_server_down",
        15,
        enabled=lambda s: s.mcp_enabled,
        probe_timeout=lambda s: s.mcp_timeout * 2 + 1.0,  # initialize, then ping
        down_impact="MCP screenshots, metadata and code are unavailable",
    ),
)

MANAGER_NAMES: tuple[ManagerName, ...] = get_args(ManagerName)
SERVICE_NAMES: tuple[ServiceName, ...] = get_args(ServiceName)


def manager(name: ManagerName) -> ManagerSpec:
    return next(spec for spec in MANAGERS if spec.name == name)


def service(name: ServiceName) -> ServiceSpec:
    return next(spec for spec in SERVICES if spec.name == name)


def services_of(name: ManagerName) -> tuple[ServiceSpec, ...]:
    return tuple(service(s) for s in manager(name).services)
