"""Prices (docs/MARKETPLACE.md): the fare rules and their version (``rules``), the trip a
quote prices (``trip``), quotes as signed tokens (``quotes``) and the desk that issues and
checks them (``desk``). Core: no web, token or routing library."""
