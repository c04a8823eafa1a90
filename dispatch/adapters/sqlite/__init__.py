"""The SQLite adapter: the embedded log's shard files and their manifest (``log.json``),
read as a log source."""
