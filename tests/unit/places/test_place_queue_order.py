"""A place's queue (``dispatch.domain.place_queues``) holds the drivers inside it that are
available, in the order they became both, whatever the interleaving of arrivals, leavings
and availability changes: checked against a plain model on random histories."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.domain.place_queues import PlaceQueues

PLACES = ("sfo", "oak")
DRIVERS = tuple(f"d{n}" for n in range(6))

steps = st.lists(
    st.tuples(
        st.sampled_from(("enter", "leave", "available", "busy", "handed_off")),
        st.sampled_from(DRIVERS),
        st.sampled_from(PLACES),
    ),
    max_size=80,
)


class Model:
    """Each driver's places and availability; the queue re-derived from the step at which
    each driver last became inside-and-available."""

    def __init__(self) -> None:
        self.inside: dict[str, set[str]] = {d: set() for d in DRIVERS}
        self.available: dict[str, bool] = dict.fromkeys(DRIVERS, False)
        self.since: dict[tuple[str, str], int] = {}

    def step(self, n: int, what: str, driver: str, place: str) -> None:
        before = {p for p in PLACES if self._queued(driver, p)}
        if what == "enter":
            self.inside[driver].add(place)
        elif what == "leave":
            self.inside[driver].discard(place)
        elif what == "available":
            self.available[driver] = True
        elif what == "busy":
            self.available[driver] = False
        else:
            self.inside[driver].clear()
            self.available[driver] = False
        for p in PLACES:
            if self._queued(driver, p) and p not in before:
                self.since[(driver, p)] = n

    def _queued(self, driver: str, place: str) -> bool:
        return self.available[driver] and place in self.inside[driver]

    def queue(self, place: str) -> list[str]:
        queued = [d for d in DRIVERS if self._queued(d, place)]
        return sorted(queued, key=lambda d: self.since[(d, place)])


@settings(max_examples=300, deadline=None)
@given(history=steps)
def test_the_queue_is_the_available_drivers_inside_in_the_order_they_became_so(
    history: list[tuple[str, str, str]],
) -> None:
    fold: PlaceQueues[str] = PlaceQueues()
    model = Model()
    available = dict.fromkeys(DRIVERS, False)
    for n, (what, driver, place) in enumerate(history):
        at = float(n)
        if what == "enter" and place not in fold.places_of(driver):
            fold.entered(place, driver, at, available[driver])
        elif what == "leave":
            fold.left(place, driver)
        elif what in ("available", "busy"):
            available[driver] = what == "available"
            fold.availability(driver, available[driver], at)
        elif what == "handed_off":
            available[driver] = False
            fold.leave_all(driver)
        model.step(n, what, driver, place)
        for p in PLACES:
            queue = fold.queue(p)
            assert [d for d, _ in queue] == model.queue(p)
            assert all(at == model.since[(d, p)] for d, at in queue)
            for position, (d, _) in enumerate(queue, start=1):
                assert fold.position(p, d) == position


@settings(max_examples=100, deadline=None)
@given(history=steps)
def test_a_checkpoints_rows_load_back_into_the_same_queues(
    history: list[tuple[str, str, str]],
) -> None:
    fold: PlaceQueues[str] = PlaceQueues()
    available = dict.fromkeys(DRIVERS, False)
    for n, (what, driver, place) in enumerate(history):
        if what == "enter" and place not in fold.places_of(driver):
            fold.entered(place, driver, float(n), available[driver])
        elif what == "leave":
            fold.left(place, driver)
        elif what in ("available", "busy"):
            available[driver] = what == "available"
            fold.availability(driver, available[driver], float(n))
    loaded: PlaceQueues[str] = PlaceQueues()
    loaded.load(fold.rows(), str)
    for p in PLACES:
        assert loaded.queue(p) == fold.queue(p)
        assert loaded.inside.get(p) == fold.inside.get(p)
    assert loaded.where == fold.where
