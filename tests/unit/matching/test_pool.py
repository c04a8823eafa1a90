"""RowPool: per-cell blocks stay exact through growth, moves, deletes, packing and resizes."""

from __future__ import annotations

import itertools
import random

import pytest

from dispatch.matching.pool import ROW, RowPool


def rows_of(pool: RowPool, slot: int) -> list[tuple[float, ...]]:
    start, n = int(pool.starts[slot]), int(pool.counts[slot])
    flat = pool.rows[start : start + n * ROW].tolist()
    return [tuple(flat[i : i + ROW]) for i in range(0, len(flat), ROW)]


def check(pool: RowPool, model: dict[int, dict[str, tuple[float, ...]]]) -> None:
    spans = []
    for cell, drivers in model.items():
        slot = pool.slot_of[cell]
        assert pool.counts[slot] == len(drivers) == len(pool.ids[slot])
        assert pool.capacity[slot] >= len(drivers)
        by_id = dict(zip(pool.ids[slot], rows_of(pool, slot), strict=True))
        assert by_id == drivers
        if pool.capacity[slot]:
            start = int(pool.starts[slot])
            spans.append((start, start + pool.capacity[slot] * ROW))
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, "two blocks overlap"
    assert pool.occupied == sum(1 for drivers in model.values() if drivers)


@pytest.mark.parametrize("seed", range(5))
def test_random_appends_writes_and_deletes_keep_every_block_exact(seed: int) -> None:
    rng = random.Random(seed)
    pool = RowPool()
    model: dict[int, dict[str, tuple[float, ...]]] = {}
    where: dict[str, tuple[int, int]] = {}  # driver -> (cell, position)
    cells = list(range(1, 200))
    for step in range(20_000):
        op = rng.random()
        if op < 0.5 or not where:  # append (cells skewed so some blocks grow large)
            cell = min(rng.choice(cells), rng.choice(cells))
            driver = f"d{step}"
            row = (rng.random() * 0.5, rng.random() * 0.5, rng.random(), float(step), float(step))
            slot = pool.slot(cell)
            pos = pool.append(slot, driver, row[0] * 2, row[1] * 2, row[2], row[3], step)
            model.setdefault(cell, {})[driver] = row
            where[driver] = (cell, pos)
        elif op < 0.7:  # overwrite in place
            driver = rng.choice(list(where))
            cell, pos = where[driver]
            old = model[cell][driver]
            row = (rng.random() * 0.5, rng.random() * 0.5, rng.random(), float(step), old[4])
            pool.write(pool.slot_of[cell], pos, row[0] * 2, row[1] * 2, row[2], row[3])
            model[cell][driver] = row
        else:  # delete; the block's last row takes its place
            driver = rng.choice(list(where))
            cell, pos = where.pop(driver)
            moved = pool.delete(pool.slot_of[cell], pos)
            del model[cell][driver]
            if moved is not None:
                where[moved] = (cell, pos)  # type: ignore[index]
        if step % 1_000 == 0:
            check(pool, model)
    check(pool, model)


def test_emptied_blocks_are_reclaimed_when_the_buffer_would_grow() -> None:
    pool = RowPool()
    size = len(pool.rows)
    for round_ in range(50):  # fill many cells, then empty them all again
        added = []
        for cell in range(round_ * 100, round_ * 100 + 100):
            slot = pool.slot(cell)
            for i in range(8):
                pool.append(slot, (cell, i), 0.1, 0.2, 0.9, 1.0, i)
                added.append((slot, cell))
        for slot, _ in added:
            pool.delete(slot, 0)
    assert pool.occupied == 0
    assert len(pool.rows) <= 4 * size, "dead blocks were never packed away"
