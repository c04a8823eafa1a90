"""Test modules are imported by their file name (no packages under tests/, pytest's default
import mode), so two test files of one name stop the whole run at collection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_files_share_a_name() -> None:
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert {name: n for name, n in names.items() if n > 1} == {}
