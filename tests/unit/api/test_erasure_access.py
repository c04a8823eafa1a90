"""Who may erase a rider or a driver (docs/PRIVACY.md): the subject themself or an admin;
nobody else. What an erasure is refused for (an active ride, a driver not offline), that
it is idempotent, and that an erasure revokes the erased subject's tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_world import DROPOFF, PICKUP, World, bearer, build_world
from httpx import Response


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("erasure"))


@pytest.mark.parametrize("path", ["/riders/{rider_s}", "/drivers/{driver_b}"])
def test_an_erasure_without_a_token_is_401(world: World, path: str) -> None:
    assert world.client.delete(path.format(**world.ids)).status_code == 401


@pytest.mark.parametrize(
    ("path", "caller"),
    [
        ("/riders/{rider_s}", "rider_r"),
        ("/riders/{rider_s}", "driver_a"),
        ("/riders/{rider_s}", "operator"),
        ("/riders/{rider_s}", "dispatcher"),
        ("/drivers/{driver_b}", "driver_a"),
        ("/drivers/{driver_b}", "rider_r"),
        ("/drivers/{driver_b}", "dispatcher"),
    ],
)
def test_only_the_subject_or_an_admin_may_erase(world: World, path: str, caller: str) -> None:
    r = world.client.delete(path.format(**world.ids), headers=world.tokens[caller])
    assert r.status_code == 403, r.text


def test_a_rider_with_an_active_ride_is_not_erased(world: World) -> None:
    r = world.client.delete(f"/riders/{world.ids['rider_r']}", headers=world.tokens["rider_r"])
    assert r.status_code == 409 and "cancel it first" in r.text, r.text


def test_a_driver_who_is_not_offline_is_not_erased(world: World) -> None:
    r = world.client.delete(f"/drivers/{world.ids['driver_a']}", headers=world.tokens["admin"])
    assert r.status_code == 409 and "go offline first" in r.text, r.text


def _assert_revoked(r: Response) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["reason"].startswith("token revoked"), r.text


def test_a_rider_who_erases_themself_has_their_tokens_revoked_from_the_answer_on(
    world: World,
) -> None:
    rider, token = world.ids["rider_s"], world.tokens["rider_s"]
    assert world.client.delete(f"/riders/{rider}", headers=token).status_code == 200
    _assert_revoked(world.client.delete(f"/riders/{rider}", headers=token))
    r = world.client.post("/rides", headers=token, json={"pickup": PICKUP, "dropoff": DROPOFF})
    _assert_revoked(r)
    _assert_revoked(world.client.get("/drivers/nearby?lat=37.77&lng=-122.42", headers=token))
    again = world.client.delete(f"/riders/{rider}", headers=world.tokens["admin"])
    assert again.status_code == 200, again.text  # idempotent: an admin may erase again


def test_an_admin_erases_an_offline_driver_whose_tokens_are_revoked(world: World) -> None:
    driver = world.ids["driver_b"]
    r = world.client.delete(f"/drivers/{driver}", headers=world.tokens["admin"])
    assert r.status_code == 200, r.text
    _assert_revoked(
        world.client.post(f"/drivers/{driver}/online", headers=world.tokens["driver_b"])
    )
    ping = world.client.post(
        f"/drivers/{driver}/location", headers=world.tokens["driver_b"], json=PICKUP
    )
    _assert_revoked(ping)


def test_an_id_of_a_shard_that_does_not_exist_is_404(world: World) -> None:
    r = world.client.delete(
        "/riders/ffff0000-0000-4000-8000-000000000000", headers=world.tokens["admin"]
    )
    assert r.status_code == 404, r.text


def test_a_ride_is_not_opened_for_a_caller_who_may_not_see_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding 12: access is checked before the sealed fields are opened (a
    forbidden caller costs no key lookup, and a damaged token gives them a 403)."""
    opened: list[str] = []

    def opener(value: object, field: str) -> object:
        opened.append(field)
        raise RuntimeError("a damaged token")

    runtime = world.client.app.state.ctx.runtime  # type: ignore[attr-defined]
    monkeypatch.setattr(runtime, "open_personal", opener)
    stranger = world.client.post("/riders", json={"name": "stranger"})  # not the ride's rider
    token = bearer(stranger.json()["token"]["access_token"])
    r = world.client.get(f"/rides/{world.ids['ride']}", headers=token)
    assert r.status_code == 403, r.text
    assert opened == []
