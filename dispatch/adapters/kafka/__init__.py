"""The Kafka adapter: topics, clients, the command bus and outbox on topics, the shard
worker's batch transactions, the log source and location follower over the topics, and
the one ``Follower`` every reader of a topic outside the workers' group shares."""
