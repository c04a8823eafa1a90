"""Technology adapters, one folder per technology: ``kafka`` (the log of record, the
command and location topics, and the event-store module in ``kafka/eventstore``, which
imports nothing else of the project), ``embedded`` (in-process transport and shard
threads), ``sqlite`` (the embedded log's files) and ``osm`` (a city's OpenStreetMap
extract read into a road graph, with pyrosm). Each implements ports the core
defines (``dispatch.ports``, ``dispatch.log.LogSource``, eventsourcing's recorders); only
the composition root and the entry points import them."""
