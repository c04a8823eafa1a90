"""Adapters on HTTP (httpx): an app's client of a running deployment's public API, with the
retries a well-behaved app makes, and its server-sent event streams (httpx-sse)."""
