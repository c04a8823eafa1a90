"""Adapters on POSIX process primitives: a ``projections.background.Background`` that runs
its job in a forked child."""
