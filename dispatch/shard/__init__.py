"""The shard application: one eventsourcing Application per shard, single writer."""
