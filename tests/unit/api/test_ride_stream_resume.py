"""An app resuming a ride's stream (``Last-Event-ID``), perhaps through another instance:
it gets the frames after the one it names, and a position the instance cannot have (past
the log's head) is refused rather than followed from there, which would skip what comes
before it."""

from __future__ import annotations

from api_world import World


def frames(world: World, ride: str, last: str | None = None) -> list[tuple[str, str]]:
    headers = dict(world.tokens["rider_r"])
    if last is not None:
        headers["Last-Event-ID"] = last
    out: list[tuple[str, str]] = []
    with world.client.stream("GET", f"/rides/{ride}/events?max_s=0.3", headers=headers) as s:
        assert s.status_code == 200, s.read()
        ident = ""
        for line in s.iter_lines():
            if line.startswith("id: "):
                ident = line.removeprefix("id: ")
            elif line.startswith("event: ") and ident:
                out.append((ident, line.removeprefix("event: ")))
                ident = ""
    return out


def test_a_resumed_stream_starts_after_the_last_event_the_app_saw(world: World) -> None:
    ride = world.ids["ride"]
    whole = frames(world, ride)
    assert len(whole) >= 2, whole
    resumed = frames(world, ride, last=whole[0][0])
    assert resumed == whole[1:]


def test_a_last_event_id_past_the_log_head_is_refused_not_followed(world: World) -> None:
    ride = world.ids["ride"]
    shard = frames(world, ride)[0][0].partition(":")[0]
    headers = world.tokens["rider_r"] | {"Last-Event-ID": f"{shard}:999999999"}
    answer = world.client.get(f"/rides/{ride}/events?max_s=0.3", headers=headers)
    assert answer.status_code == 422, answer.text
    assert "past the log head" in answer.json()["reason"]
