"""Typed domain errors. Each carries a stable machine-readable code and a human reason."""

from __future__ import annotations


class DomainError(Exception):
    """A command was refused by the domain; nothing was recorded."""

    code = "domain_error"
    # Whether the refusal is the command's outcome for good (kept in its command record, so
    # a retry with the same key gets it again); False for a refusal that only holds until
    # a message between shards arrives: a retry is decided again.
    final = True

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IllegalTransition(DomainError):
    """The aggregate's current state does not allow the command."""

    code = "illegal_transition"


class NotFound(DomainError):
    """The command names an aggregate that does not exist."""

    code = "not_found"


class AlreadyExists(DomainError):
    """A registration or request reused an id that is already taken."""

    code = "already_exists"


class Forbidden(DomainError):
    """The actor named in the command has no right to act on this aggregate."""

    code = "forbidden"


class Erased(DomainError):
    """The rider or driver was erased (docs/PRIVACY.md): nothing more is done for them."""

    code = "erased"


class InvalidCommand(DomainError):
    """The command's payload is well-formed but makes no sense (for example a bad coordinate)."""

    code = "invalid_command"


class OutsideServiceArea(DomainError):
    """A ride's pickup or drop-off lies in a market but outside its service area."""

    code = "outside_service_area"


class QuoteExpired(DomainError):
    """The quote a ride request carries had expired when the shard handled it."""

    code = "quote_expired"


class NotOpenedYet(NotFound):
    """The ride is not in its pickup's shard, and may still be opening there (its rider's
    home shard sent it): not final, a retry with the same key is decided again."""

    final = False


class BusyElsewhere(IllegalTransition):
    """The rider's active ride is in another shard, whose end may be on its way here: not
    final, a retry with the same key is decided again."""

    final = False


class DriverMoved(DomainError):
    """The driver's availability is another shard's now (handed off, ``to``; None: not
    known here): not final, the command is to be sent there."""

    code = "moved"
    final = False

    def __init__(self, driver_id: object, to: int | None) -> None:
        where = f"shard {to}" if to is not None else "another shard"
        super().__init__(f"driver {driver_id} is served by {where} now: send it there")
        self.to = to


class NotHereYet(DomainError):
    """The driver is not known at the shard the command was sent to, which is not its home:
    it may be on its way there (a hand-off): not final, a retry is decided again."""

    code = "not_here_yet"
    final = False


class TooManyScheduled(IllegalTransition):
    """The rider already holds the most scheduled rides a rider may."""

    code = "too_many_scheduled"


class ScheduledTimeOutOfRange(InvalidCommand):
    """A scheduled ride's time is nearer than the least lead time or beyond the horizon."""

    code = "scheduled_time_out_of_range"
