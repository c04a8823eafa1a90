"""What every request handler can reach: the runtime, the tokens and API helpers.

Built once per app by ``create_app`` and kept on ``app.state``; ``deps`` hands it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.api.auth import Tokens
from dispatch.api.events import EventHub
from dispatch.api.metrics import ApiMetrics
from dispatch.api.ratelimit import RateLimits
from dispatch.api.settings import ApiLimits
from dispatch.pricing.desk import FareDesk
from dispatch.read_audit import ReadAudit
from dispatch.runtime import Runtime


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """Bounds of the API layer (not settings of the engine)."""

    command_timeout_s: float = 2.0  # wait for an outcome, then 202
    read_wait_s: float = 2.0  # wait for a consistency token, then 504
    stream_max_s: float = 900.0  # an event stream ends after this
    heartbeat_s: float = 15.0  # comment lines that keep idle streams open
    ready_max_lag: int = 1_000  # events behind the log head and still ready
    manage_runtime: bool = True  # start and stop the runtime with the app's lifespan


@dataclass
class ApiContext:
    runtime: Runtime
    tokens: Tokens
    options: ApiOptions
    hub: EventHub
    metrics: ApiMetrics
    limits: ApiLimits
    rate: RateLimits
    reads: ReadAudit  # where operators' reads are recorded before they are answered
    fares: FareDesk  # fare quotes (POST /fares/estimate)
