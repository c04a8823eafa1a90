"""The pure domain model: aggregates, events, errors (stdlib and eventsourcing.domain only)."""
