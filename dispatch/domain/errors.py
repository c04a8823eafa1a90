"""Typed domain errors. Each carries a stable machine-readable code and a human reason."""

from __future__ import annotations


class DomainError(Exception):
    """A command was refused by the domain; nothing was recorded."""

    code = "domain_error"

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


class InvalidCommand(DomainError):
    """The command's payload is well-formed but makes no sense (for example a bad coordinate)."""

    code = "invalid_command"
