"""Deciding one command through an embedded engine's worker, as tests of the shard do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from dispatch.adapters.embedded.engine import EmbeddedEngine
from schemas import commands as c


def decide(engine: EmbeddedEngine, now: float, command: c.Command) -> c.Outcome:
    """Send ``command`` issued at ``now``, run the engine once, and return its outcome."""
    env = c.CommandEnvelope(
        command_id=str(uuid.uuid4()),
        issued_at=datetime.fromtimestamp(now, UTC),
        command=command,
    )
    engine.transport.send_command(env)
    (report,) = engine.run_once()
    (outcome,) = [o for o in report.outcomes if o.command_id == env.command_id]
    return outcome
