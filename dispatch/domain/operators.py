"""Operators: the people who run the service, each a principal of their own.

An operator is known by a name and has one of three roles: a ``viewer`` reads rides,
drivers, the heatmap and streams; a ``dispatcher`` also acts on rides (cancels one); an
``admin`` may do everything. Their id is derived from their name (``operator_id``), so
the same name is the same operator in every token and every audit record, with no
registry to keep. Every change an operator makes is recorded in an event that names them
and the role they acted in (``operator_id``, ``operator_name``, ``operator_role``): the
audit trail.
"""

from __future__ import annotations

import re
import uuid
from typing import Literal, get_args

OperatorRole = Literal["viewer", "dispatcher", "admin"]
OPERATOR_ROLES: tuple[OperatorRole, ...] = get_args(OperatorRole)
# The roles that may act on rides.
DispatchingRole = Literal["dispatcher", "admin"]
DISPATCHING_ROLES: tuple[DispatchingRole, ...] = get_args(DispatchingRole)
# An operator's name: 1 to 32 lowercase letters, digits, '.', '_' or '-', from a letter.
OPERATOR_NAME_PATTERN = r"^[a-z][a-z0-9._-]{0,31}$"
# Fixed for good: an operator's id is derived from their name in it (``operator_id``).
OPERATOR_NAMESPACE = uuid.UUID("0f3b6c2e-8d41-4a5f-9e27-b1c4d7a0e9f3")
# The fields of an event that name the operator who caused it and the role they acted in:
# such an event is an audit record (``dispatch replay audit`` lists them).
AUDIT_FIELDS = ("operator_id", "operator_name", "operator_role")


def operator_id(name: str) -> uuid.UUID:
    """The operator's id: a UUIDv5 of the name in ``OPERATOR_NAMESPACE``."""
    return uuid.uuid5(OPERATOR_NAMESPACE, name)


def operator_name_error(name: str) -> str | None:
    """Why ``name`` is not an operator's name, or None."""
    if re.fullmatch(OPERATOR_NAME_PATTERN, name) is None:
        return (
            f"operator name {name[:40]!r} is not 1 to 32 lowercase letters, digits, '.', '_' "
            "or '-' starting with a letter"
        )
    return None
