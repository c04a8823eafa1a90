"""Worker throughput with 1 and with 2 worker processes on the same topics (4 shards).

A backlog of commands is produced first (register a driver, put it online, register a
rider: spread over 4 shards), then N `dispatch worker` processes start and the outcomes
topic is read until every command has its outcome. The rate is taken from the first
outcome to the last (process start-up and shard restore excluded). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

from kafka import TopicPartition

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.config import new_consumer, new_producer
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.domain.ids import new_id
from schemas import commands as c

SHARDS = 4


def backlog(bootstrap: str, prefix: str, per_shard: int) -> int:
    producer = new_producer(bootstrap, linger_ms=20)
    topic, now, count = Topics(prefix).commands, datetime.now(UTC), 0
    for shard in range(SHARDS):
        for i in range(per_shard // 3):
            driver, rider = new_id(shard), new_id(shard)
            for command in (
                c.RegisterDriver(driver_id=driver, name=f"d{i}"),
                c.GoOnline(driver_id=driver),
                c.RegisterRider(rider_id=rider, name=f"r{i}"),
            ):
                env = c.CommandEnvelope(
                    command_id=str(uuid.uuid4()), issued_at=now, command=command
                )
                key, value = wire.encode_command(env)
                producer.send(topic, key=key, value=value, partition=shard)
                count += 1
    producer.flush()
    producer.close()
    return count


def run(bootstrap: str, workers: int, per_shard: int) -> dict[str, float]:
    prefix = f"bench-workers-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, prefix, SHARDS)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        total = backlog(bootstrap, prefix, per_shard)
        consumer = new_consumer(bootstrap, group_id=None)
        parts = [TopicPartition(Topics(prefix).outcomes, p) for p in range(SHARDS)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        env = dict(
            os.environ,
            DISPATCH_TOPIC_PREFIX=prefix,
            DISPATCH_KAFKA_BOOTSTRAP=bootstrap,
            DISPATCH_SHARDS=str(SHARDS),
        )
        for i in range(workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dispatch", "worker", "--member", f"bench-{i}"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        seen, first, last = 0, 0.0, 0.0
        deadline = time.monotonic() + 600
        while seen < total and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=100).values():
                if records and not first:
                    first = time.perf_counter()
                seen += len(records)
                last = time.perf_counter()
        consumer.close()
        return {
            "workers": workers,
            "commands": total,
            "outcomes": seen,
            "seconds": round(last - first, 2),
            "commands_per_s": round(seen / (last - first)),
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        delete_topics(bootstrap, prefix)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--per-shard", type=int, default=15_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    one = run(args.bootstrap, 1, args.per_shard)
    two = run(args.bootstrap, 2, args.per_shard)
    result = {
        "one_worker": one,
        "two_workers": two,
        "ratio": round(two["commands_per_s"] / one["commands_per_s"], 2),
    }
    print(json.dumps(result, indent=2) if args.json else result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
