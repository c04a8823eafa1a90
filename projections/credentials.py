"""Credentials view: each principal's current token version, for the API's token check.

Every authenticated request compares its token's version with the one here
(``dispatch.domain.credentials.revoked``); a principal that was never revoked is not
listed (version 0). Kept in ``views.sqlite`` with the others, so a restart folds only the
events after them; an older store without this view folds it alone from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatch.domain.credentials import Credentials
from dispatch.log import LogEvent
from projections.rows import pickled_by_position


@pickled_by_position
@dataclass(slots=True)
class CredentialsRow:
    token_version: int
    revoked_at: float  # the log's time of the last revocation
    by: str  # who revoked last: "" the principal itself, else the operator's name


@dataclass
class CredentialsView:
    rows: dict[str, CredentialsRow] = field(default_factory=dict)  # by principal id

    def version(self, principal_id: str) -> int:
        """The principal's current token version (0: never revoked)."""
        row = self.rows.get(principal_id)
        return row.token_version if row is not None else 0


class CredentialsProjection:
    name = "credentials"
    topics = frozenset({Credentials.TokensRevoked.TOPIC, Credentials.TokensRevokedByOperator.TOPIC})
    params = ""

    def initial(self) -> CredentialsView:
        return CredentialsView()

    def apply(self, view: CredentialsView, e: LogEvent) -> CredentialsView:
        data = e.data
        principal, version = data["principal_id"], int(data["token_version"])
        row = view.rows.get(principal)
        if row is None or version > row.token_version:  # versions only go up
            view.rows[principal] = CredentialsRow(version, e.at, data.get("operator_name", ""))
        return view
