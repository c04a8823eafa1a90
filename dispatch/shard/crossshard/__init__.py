"""Cross-shard matching, the protocol core: pure state machines and messages, no I/O.

A ride lives in its pickup's shard (R), a driver's availability in its owner's (O), a
rider's one-active-ride lock in its home shard (H). ``ShardNode`` is one shard's part:
``owner.Owners`` (the single commit point of each driver it owns), ``rides.Rides`` (asks,
answers, the accept gate), ``riders.RiderLocks`` and the ``channels`` (a transactional
outbox, an inbox that applies each message once and in order). docs/ARCHITECTURE.md,
"Cross-shard matching (protocol)", states the protocol and why it cannot double-book.
"""
