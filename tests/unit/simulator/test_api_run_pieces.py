"""The pure pieces of a run against a deployment: the load's shape, the targets it may
load, and the saved accounts it reuses."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pytest

from dispatch.simulator.apps.accounts import Account, AccountError, load, save
from dispatch.simulator.apps.config import TargetRefused, check_target
from dispatch.simulator.apps.profile import arrivals, joining, share


def counts(profile: str, seeds: range = range(40)) -> list[int]:
    return [len(arrivals(profile, 60.0, 10.0, random.Random(s))) for s in seeds]


def test_every_profile_sends_as_many_requests_as_the_rate_asks_over_a_run() -> None:
    for profile in ("flat", "rush"):
        mean = sum(counts(profile)) / 40  # 60 a minute for 10 minutes: 600
        assert 585 <= mean <= 615, (profile, mean)
    ramp = sum(counts("ramp")) / 40  # the first half ramps from a tenth: 0.775 of it
    assert 450 <= ramp <= 480


def test_a_rush_peaks_in_the_middle_and_a_ramp_rises() -> None:
    times = arrivals("rush", 600.0, 10.0, random.Random(1))
    thirds = [sum(1 for t in times if k * 200 <= t < (k + 1) * 200) for k in range(3)]
    assert thirds[1] > 2 * thirds[0] and thirds[1] > 2 * thirds[2]
    ramp = arrivals("ramp", 600.0, 10.0, random.Random(1))
    assert sum(t < 60 for t in ramp) < sum(t >= 540 for t in ramp) / 3
    assert share("rush", 0.5) == pytest.approx(3.0 / 1.55) and share("flat", 0.9) == 1.0


def test_drivers_go_online_as_the_profile_rises_and_all_are_on_by_its_peak() -> None:
    assert joining("flat", 50, 10.0) == [0.0] * 50
    ramp, rush = joining("ramp", 100, 10.0), joining("rush", 100, 10.0)
    for times in (ramp, rush):
        assert times == sorted(times) and times[0] == 0.0
        assert max(times) == pytest.approx(300.0, abs=0.01)  # all online by the middle
    assert sum(t == 0.0 for t in ramp) == 10  # a tenth at once
    assert sum(t == 0.0 for t in rush) == 3  # the rush's floor, 0.1 of its peak of 3
    # as many online at each moment as the rate's share of its peak
    for at in (60.0, 150.0, 240.0):
        online = sum(t <= at for t in ramp)
        assert online == pytest.approx(100 * share("ramp", at / 600.0), abs=1)
    assert joining("ramp", 1, 10.0) == [0.0]  # one driver: online at once


def test_arrivals_come_from_the_seed_alone() -> None:
    assert arrivals("rush", 30, 5, random.Random(4)) == arrivals("rush", 30, 5, random.Random(4))


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        share("sawtooth", 0.5)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:8000/", "https://[::1]:8443"]
)
def test_loopback_targets_are_taken(url: str) -> None:
    assert check_target(url, allow_remote=False) == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://10.1.2.3:8000", "not a loopback address"),
        ("http://192.0.2.7", "--allow-remote"),
        ("ftp://127.0.0.1", "not an http"),
        ("127.0.0.1:8000", "not an http"),
        ("http://127.0.0.1:8000/?x=1", "no query"),
    ],
)
def test_other_targets_are_refused_with_the_reason(url: str, said: str) -> None:
    with pytest.raises(TargetRefused, match=said.replace("?", r"\?")):
        check_target(url, allow_remote=False)


def test_a_remote_target_is_taken_when_allowed() -> None:
    assert check_target("http://192.0.2.7:80", allow_remote=True) == "http://192.0.2.7:80"


def test_saved_accounts_come_back_and_the_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "city.json"
    driver, rider = "7d1f0f4e-4b0e-4a43-9a3c-1c1a3b7c9d10", "0b8d7c5e-2f6a-4e1b-8c3d-5a6b7c8d9e0f"
    accounts = [
        Account("driver", driver, (37.7, -122.4), refresh_token="r1"),
        Account("rider", rider, (37.8, -122.5), refresh_token="r2"),
    ]
    save(path, accounts)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load(path)
    assert [(a.role, a.id, a.home, a.refresh_token) for a in again] == [
        (a.role, a.id, a.home, a.refresh_token) for a in accounts
    ]
    assert load(tmp_path / "none-yet.json") == []


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"format": 2, "accounts": []}', '{"format": 1, "accounts": [{}]}',
             '{"format": 1, "accounts": [{"role": "driver", "id": "x", "home": [1, 2], '
             '"refresh_token": "r"}]}']
)  # fmt: skip
def test_a_damaged_credentials_file_is_refused_and_named(tmp_path: Path, text: str) -> None:
    path = tmp_path / "city.json"
    path.write_text(text)
    with pytest.raises(AccountError, match="damaged credentials file"):
        load(path)
