"""What a serving process runs: the transport, the views and (embedded) the shard workers.

The API talks to a ``Runtime`` only: send a command, wait for its outcome, send pings, read
views, wait until the views include a position. Built by ``bootstrap.build_runtime``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol
from uuid import UUID

from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.domain.products import Catalog
from dispatch.domain.ride_fare import SurgeSource
from dispatch.markets import MarketMap
from dispatch.messages import Ping
from dispatch.ports import CommandBus, Tracer
from dispatch.privacy import Opener, as_is
from dispatch.settings import Settings
from projections.rides import RideRow
from projections.runner import ProjectionRunner
from projections.store import RideArchive
from projections.views import ViewSet
from projections.warm import WarmStart, first_catch_up
from schemas.commands import CommandEnvelope, Outcome

log = logging.getLogger(__name__)

MAX_HOPS = 8  # shards a driver's command follows it through (one a hand-off since it left)
NOT_HERE_YET_RETRY_S = 0.05

# A start that folded this many events keeps its views at once (in the background).
KEEP_AFTER_EVENTS = 10_000


class Service(Protocol):
    """Something the runtime starts after the views have caught up, and stops first."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def problem(self) -> str | None:
        """Why the service is not doing its job right now (for readiness), or None."""
        ...


@dataclass
class Runtime:
    settings: Settings
    transport: CommandBus
    views: ViewSet
    runner: ProjectionRunner
    markets: MarketMap
    clock: Callable[[], float]
    engine: EmbeddedEngine | None = None
    archive: RideArchive | None = None  # ended rides that left the rides view
    warm: WarmStart | None = None  # the kept views taken up, checked by the first catch-up
    services: list[Service] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    # How a sealed personal field in a view is opened for an answer (docs/PRIVACY.md).
    open_personal: Opener = as_is
    # When sealing began, if data recorded before then is in the clear (embedded; an
    # erasure answers it: docs/PRIVACY.md); None when everything was sealed.
    clear_before: float | None = None
    # Starts the span of each command sent (``dispatch.api.writes``); None: not traced.
    tracer: Tracer | None = None
    _started: bool = field(default=False, init=False)
    _catalog: Catalog | None = field(default=None, init=False)

    @property
    def catalog(self) -> Catalog:
        """The products (the settings', read once)."""
        if self._catalog is None:
            self._catalog = self.settings.catalog
        return self._catalog

    @property
    def started(self) -> bool:
        return self._started

    def head(self, shard: int) -> int | None:
        """The shard's last log position, when the log source can tell (see ``LogSource``)."""
        return self.runner.source.head(shard)

    def start(self) -> None:
        if self._started:
            return
        started = time.perf_counter()
        folded = (
            first_catch_up(self.runner, self.warm)
            if self.warm is not None
            else self.runner.catch_up()
        )
        log.info(
            "views caught up: %d events folded in %.3f s", folded, time.perf_counter() - started
        )
        if folded >= KEEP_AFTER_EVENTS and self.runner.keeper is not None:
            self.runner.keeper.save_soon()
        if self.engine is not None:
            self.engine.start()
        if self.runner.keeper is not None:
            self.runner.keeper.open()
        self.runner.start()
        for service in self.services:
            service.start()
        self._started = True

    def stop(self) -> None:
        if not self._started:
            return
        for service in reversed(self.services):
            service.stop()
        self.runner.stop()
        self._keep_views()
        if self.engine is not None:
            self.engine.close()
        for close in self.closers:
            close()
        self._started = False

    def _keep_views(self) -> None:
        """A clean stop keeps the views, so the next start folds only what follows."""
        if self.runner.keeper is None:
            return
        try:
            self.runner.keeper.save()
        except Exception:
            log.exception("views could not be kept at stop; the next start folds more")
        finally:
            self.runner.keeper.close()  # a runner that did not stop in time keeps none

    def ended_ride(self, ride_id: str) -> RideRow | None:
        """A ride that ended and left the rides view, from the archive (a disk read)."""
        return self.archive.get(ride_id) if self.archive is not None else None

    def send(self, envelope: CommandEnvelope, timeout_s: float) -> Outcome | None:
        """Send a command and wait up to ``timeout_s`` for its outcome (None on timeout).

        A driver's command refused as ``moved`` (the driver was handed off) is sent on to
        the shard named, once a shard crossed; at a shard it is being handed to, it is sent
        again until the hand-off has arrived (refused there as not yet known)."""
        deadline = time.monotonic() + timeout_s
        hops = 0
        while True:
            self.transport.send_command(envelope)
            left = max(0.0, deadline - time.monotonic())
            outcome = self.transport.wait_outcome(envelope.command_id, left, envelope.fingerprint)
            if outcome is None or outcome.accepted or time.monotonic() >= deadline:
                return outcome
            if outcome.code == "moved" and outcome.moved_to is not None and hops < MAX_HOPS:
                hops += 1
                envelope = envelope.model_copy(update={"shard": outcome.moved_to})
            elif outcome.code == "not_here_yet":
                time.sleep(NOT_HERE_YET_RETRY_S)  # the hand-off is on its way there
            else:
                return outcome

    def serving(self, driver_id: UUID) -> int | None:
        """The shard serving a driver handed off away from its home, as the views last saw
        it (None: its home, or not known)."""
        return self.views.drivers.tenures.serving(str(driver_id))

    def send_pings(self, pings: Sequence[Ping]) -> None:
        """Pings go to the shard workers (matching) and at once to this process's location
        views (on Kafka, other processes' views get them from the topic)."""
        self.transport.send_pings(pings)
        self.apply_pings(pings)

    def apply_pings(self, pings: Sequence[Ping]) -> None:
        with self.views.lock:
            for ping in pings:
                self.views.apply_ping(ping)

    def surge_at(self, lat: float, lng: float) -> tuple[Decimal, SurgeSource]:
        """The surge multiplier of the place's cell now, as the views last saw it, and
        where it came from (the event that set it above 1.00)."""
        with self.views.lock:
            text, source = self.views.surge.reading(lat, lng)
        return Decimal(text), source

    def wait_for(self, shard: int, position: int, timeout_s: float) -> bool:
        """Read-your-writes: wait until the views include ``position`` of ``shard``."""
        self.runner.nudge()
        return self.views.wait_for(shard, position, timeout_s)

    def views_age(self, shard: int) -> float:
        """Seconds since the views last read ``shard`` to its end (from when that read
        began; infinite before the first): they hold every event committed before."""
        return self.runner.age(shard)
