"""Transports: how commands and pings reach a shard's worker, and outcomes come back."""
