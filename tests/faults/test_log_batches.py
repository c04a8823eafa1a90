"""tests/faults/cut_off.py's reading of ``DumpLogSegments`` (no cluster: its output, in the
format Kafka 4.1's tool prints, as fault 3 read it from a run's segment files): each
transactional batch is decided by the next marker of its own producer in its own
partition, as a read_committed reader decides it."""

from __future__ import annotations

from cut_off import _decide, _parse_dump

HEAD = (
    "baseOffset: {o} lastOffset: {last} count: {n} baseSequence: 0 lastSequence: 0 "
    "producerId: {pid} producerEpoch: {e} partitionLeaderEpoch: 0 isTransactional: {tx} "
    "isControl: {ctl} deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: {t} "
    "size: 78 magic: 2 compresscodec: none crc: 1 isvalid: true"
)


def batch(o: int, pid: int, e: int, n: int = 2, tx: bool = True, t: int = 1000) -> list[str]:
    lines = [HEAD.format(o=o, last=o + n - 1, n=n, pid=pid, e=e, tx=str(tx).lower(),
                         ctl="false", t=t)]  # fmt: skip
    lines += [f"| offset: {o + i} CreateTime: {t} keySize: 4 valueSize: 9 sequence: {i} "
              "headerKeys: []" for i in range(n)]  # fmt: skip
    return lines


def marker(o: int, pid: int, e: int, kind: str) -> list[str]:
    return [
        HEAD.format(o=o, last=o, n=1, pid=pid, e=e, tx="true", ctl="true", t=2000),
        f"| offset: {o} CreateTime: 2000 keySize: 4 valueSize: 6 sequence: -1 headerKeys: [] "
        f"endTxnMarker: {kind} coordinatorEpoch: 0",
    ]


def test_batches_are_decided_by_their_producers_next_marker_in_their_partition() -> None:
    out = "\n".join(
        [
            "Dumping /d/p.events-0/00000000000000000000.log",
            "Log starting offset: 0",
            *batch(0, pid=7, e=1),  # committed by 7's COMMIT below
            *batch(2, pid=9, e=0, tx=False),  # not transactional
            *batch(4, pid=8, e=0),  # another producer: left open (no marker of 8's here)
            *marker(6, pid=7, e=1, kind="COMMIT"),
            *batch(7, pid=7, e=1, t=5000),  # aborted by the fencing marker (epoch 2)
            *marker(9, pid=7, e=2, kind="ABORT"),
            *batch(10, pid=7, e=3),  # the new owner's, committed
            *marker(12, pid=7, e=3, kind="COMMIT"),
            "Dumping /d/p.events-1/00000000000000000000.log",
            *batch(0, pid=8, e=0),  # 8's COMMIT is in this partition: this one only
            *marker(2, pid=8, e=0, kind="COMMIT"),
            *batch(3, pid=7, e=1),  # 7's markers in the other partition do not decide it
        ]
    )
    got = [
        (b.topic, b.partition, b.base_offset, b.last_offset, b.producer_id, b.producer_epoch,
         b.count, b.state)
        for b in _decide(_parse_dump(out))
    ]  # fmt: skip
    assert got == [
        ("p.events", 0, 0, 1, 7, 1, 2, "committed"),
        ("p.events", 0, 2, 3, 9, 0, 2, "plain"),
        ("p.events", 0, 4, 5, 8, 0, 2, "open"),
        ("p.events", 0, 6, 6, 7, 1, 1, "marker"),
        ("p.events", 0, 7, 8, 7, 1, 2, "aborted"),
        ("p.events", 0, 9, 9, 7, 2, 1, "marker"),
        ("p.events", 0, 10, 11, 7, 3, 2, "committed"),
        ("p.events", 0, 12, 12, 7, 3, 1, "marker"),
        ("p.events", 1, 0, 1, 8, 0, 2, "committed"),
        ("p.events", 1, 2, 2, 8, 0, 1, "marker"),
        ("p.events", 1, 3, 4, 7, 1, 2, "open"),
    ]
    assert [b.create_time_ms for b in _decide(_parse_dump(out))][4] == 5000


def test_a_compacted_batch_keeps_its_last_offset() -> None:
    """Compaction drops records but keeps the batch's last offset: the partition's end as
    the dump shows it is the last batch's last offset + 1, not its base offset + count."""
    head = HEAD.format(o=5, last=9, n=2, pid=-1, e=-1, tx="false", ctl="false", t=1000)
    out = "\n".join(["Dumping /d/p.snapshots-0/00000000000000000000.log", head])
    (only,) = _decide(_parse_dump(out))
    assert (only.base_offset, only.last_offset, only.count, only.state) == (5, 9, 2, "plain")
