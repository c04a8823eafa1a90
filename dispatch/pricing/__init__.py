"""Prices (docs/MARKETPLACE.md): the fare rules and their version (``rules``). Core: no
web, token or routing library."""
