"""A view store: every view and its checkpoint, saved together in one SQLite transaction.

Views are pickled: the store is a local cache that can always be rebuilt from the log
(``dispatch replay rebuild``), not a format for other programs. It records the
``VIEW_FORMAT`` it was written with; a store of another format loads as empty (the views
are rebuilt) rather than as objects of a shape the code no longer has.
"""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path
from typing import Any

from projections.base import Checkpointed

# Bump when a view's pickled shape changes.
VIEW_FORMAT = 2
_FORMAT_ROW = "__format__"


class ViewStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS views (name TEXT PRIMARY KEY, state BLOB NOT NULL)"
        )
        self._conn.commit()

    def save(self, states: dict[str, Checkpointed[Any]]) -> None:
        """Save every view with its checkpoint atomically."""
        rows = [(name, pickle.dumps(state, protocol=5)) for name, state in states.items()]
        rows.append((_FORMAT_ROW, pickle.dumps(VIEW_FORMAT)))
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO views VALUES (?, ?)", rows)

    def load(self) -> dict[str, Checkpointed[Any]]:
        rows = dict(self._conn.execute("SELECT name, state FROM views").fetchall())
        written = rows.pop(_FORMAT_ROW, None)
        if written is None or pickle.loads(written) != VIEW_FORMAT:
            return {}
        return {name: pickle.loads(blob) for name, blob in rows.items()}

    def close(self) -> None:
        self._conn.close()
