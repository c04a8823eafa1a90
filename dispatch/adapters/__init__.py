"""Technology adapters, one folder per technology: ``kafka`` (the log of record, the
command and location topics, and the event-store module in ``kafka/eventstore``, which
imports nothing else of the project), ``embedded`` (in-process transport and shard
threads) and ``sqlite`` (the embedded log's files). Each implements ports the core
defines (``dispatch.ports``, ``dispatch.log.LogSource``, eventsourcing's recorders); only
the composition root and the entry points import them."""
