"""Operator tools over the event log: rebuild, history, state-at, verify, export, stats.

Everything here only reads the log."""
