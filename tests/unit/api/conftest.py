"""The ``world`` fixture: see ``api_world``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_world import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("api"))
