"""Files replaced whole or not at all (``dispatch.files``)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from dispatch.files import replacing, write_text


def test_a_written_file_replaces_the_old_one_whole_and_is_readable_by_others(
    tmp_path: Path,
) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    write_text(target, "new\r\nlines\n")
    assert target.read_bytes() == b"new\r\nlines\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "demand.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("the disk filled")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["demand.csv"]
