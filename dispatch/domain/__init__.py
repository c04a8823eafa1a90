"""The pure domain model: aggregates, events and errors (standard library + eventsourcing.domain)."""
