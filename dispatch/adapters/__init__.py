"""Technology adapters, one folder per technology: ``kafka`` (the log of record, the
command and location topics, and the event-store module in ``kafka/eventstore``, which
imports nothing else of the project), ``embedded`` (in-process transport and shard
threads), ``sqlite`` (the embedded log's files), ``osm`` (a city's OpenStreetMap
extract read into a road graph, with pyrosm), ``networkit`` (fastest paths over it) and
``jwt`` (bearer tokens, with PyJWT). Each implements ports the core defines
(``dispatch.ports``, ``dispatch.log.LogSource``, ``dispatch.roads.paths.ShortestPaths``,
``dispatch.tokens.TokenCodec``, eventsourcing's recorders); only the composition root and
the entry points import them."""
