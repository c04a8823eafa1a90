"""The embedded adapter: an in-process command bus and outbox, and shard workers on
threads, for running on one machine with no broker."""
