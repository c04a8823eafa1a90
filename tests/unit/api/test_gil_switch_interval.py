"""``dispatch serve`` lets another thread take the GIL after
``DISPATCH_API_GIL_SWITCH_INTERVAL_MS`` (0.5 ms by default), so its event loop does not
wait 5 ms for the GIL after every socket call while the views are kept
(docs/OPERATIONS.md); a meaningless value is refused with the setting's name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dispatch.api import serve as serving
from dispatch.settings import Settings


@pytest.fixture(autouse=True)
def interval_restored() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_serve_sets_the_switch_interval_before_building_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []

    class Stop(Exception):
        pass

    def build_runtime(settings: Any) -> Any:
        seen.append(sys.getswitchinterval())
        raise Stop

    monkeypatch.setattr(serving, "build_runtime", build_runtime)
    monkeypatch.setattr(serving.logs, "configure", lambda *a, **kw: None)  # this process's
    sys.setswitchinterval(0.005)

    with pytest.raises(Stop):
        serving.serve(Settings(data_dir=tmp_path))

    assert seen == [pytest.approx(0.0005)]


def test_the_interval_is_the_settings(tmp_path: Path) -> None:
    serving.switch_gil_often(Settings(data_dir=tmp_path, api_gil_switch_interval_ms=2))

    assert sys.getswitchinterval() == pytest.approx(0.002)


@pytest.mark.parametrize("value", [0, -1, 101])
def test_a_meaningless_interval_is_refused_naming_it(value: float) -> None:
    with pytest.raises(ValidationError, match="api_gil_switch_interval_ms"):
        Settings(api_gil_switch_interval_ms=value)
