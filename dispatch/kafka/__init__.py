"""Shared Kafka helpers: topic names and specs, admin functions, client configuration.

Depends on nothing above it (no domain, no eventsourcing), like a port's adapter library.
"""
