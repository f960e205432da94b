"""The running components of one app, opened in dependency order and closed in reverse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from exporter.config import Settings
from exporter.events import EventLog
from exporter.metrics import Metrics
from exporter.service import SessionMetricsService, open_service
from exporter.sessions.factory import SessionLayer, open_session_layer
from exporter.upstreams.factory import FigmaLayer, open_figma_layer


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    metrics: Metrics
    events: EventLog
    sessions: SessionLayer
    figma: FigmaLayer
    service: SessionMetricsService


@asynccontextmanager
async def open_runtime(settings: Settings, metrics: Metrics) -> AsyncIterator[Runtime]:
    events = EventLog(settings.event_log_size, metrics)
    async with AsyncExitStack() as stack:
        sessions = await stack.enter_async_context(open_session_layer(settings, metrics, events))
        figma = await stack.enter_async_context(
            open_figma_layer(settings, metrics, events, sessions)
        )
        service = await stack.enter_async_context(
            open_service(settings, metrics, events, sessions, figma)
        )
        yield Runtime(settings, metrics, events, sessions, figma, service)
