"""Prices (docs/MARKETPLACE.md): the fare rules and their version (``rules``), the trip a
quote prices (``trip``), quotes as signed tokens (``quotes``) and the desk that issues and
checks them (``desk``). Core: no adapter, no web or token library (the quotes' signatures
are the JWT adapter's, behind ``quotes.QuoteCodec``)."""
