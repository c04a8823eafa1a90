"""The operations page's sign-in and reads (dispatch.api.ops_page), against a real uvicorn
server: the token exchanged at once for a cookie of the page's reads only."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatch.api.auth import mint_operator_token
from dispatch.api.ops_page import COOKIE
from tests.e2e.served_api import AUTH, serving


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    with serving(tmp_path / "data", log_level="info") as s:
        yield s


def _cookie_header(answer) -> str:  # type: ignore[no-untyped-def]
    return answer.headers["set-cookie"]


def test_the_token_is_exchanged_at_once_for_a_strict_httponly_cookie_of_the_page(
    server,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    token = mint_operator_token(AUTH, "vera", "viewer")
    caplog.set_level(logging.DEBUG)
    with server.client() as c:
        answer = c.get(f"/ops?token={token}", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/ops"
        cookie = _cookie_header(answer)
        attrs = [a.strip().lower() for a in cookie.split(";")]
        assert "httponly" in attrs and "samesite=strict" in attrs and "path=/ops" in attrs
        assert any(a.startswith("max-age=") and 0 < int(a[8:]) <= 900 for a in attrs)
        assert token not in cookie, "the cookie is a session, not the token"
        page = c.get("/ops")
        assert page.status_code == 200 and 'id="map"' in page.text and "vera" in page.text
        state = c.get("/ops/state")
        assert state.status_code == 200 and "drivers" in state.json()
        # a viewer reads; the cookie is no bearer: writes and other reads refuse it
        ride = uuid.uuid4()
        c.cookies.set(COOKIE, c.cookies[COOKIE])  # sent to every path, not /ops alone
        write = c.post(f"/rides/{ride}/operator-cancel", json={"reason": "test"})
        assert write.status_code == 401
        assert c.get("/heatmap").status_code == 401
        form = c.post("/ops/session", data={"token": token}, follow_redirects=False)
        assert form.status_code == 303 and COOKIE in _cookie_header(form)
    # the server's logs (the test's own HTTP client logs its requests' URLs: not the app's)
    server_side = ("uvicorn", "dispatch", "fastapi", "starlette", "projections")
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.name.split(".")[0] in server_side
    )
    assert "/ops" in logged, "the access log was captured"
    assert token not in logged, "the token is in no log line"


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_without_or_with_a_bad_token_the_page_and_its_reads_are_refused(
    server,
    token,  # type: ignore[no-untyped-def]
) -> None:
    with server.client() as c:
        if token is None:
            page = c.get("/ops")
            assert page.status_code == 200 and 'action="/ops/session"' in page.text
        else:
            assert c.get(f"/ops?token={token}", follow_redirects=False).status_code == 401
            assert c.post("/ops/session", data={"token": token}).status_code == 401
            assert COOKIE not in c.cookies
        assert c.get("/ops/state").status_code == 401
        c.cookies.set(COOKIE, "x.y.z")
        assert c.get("/ops/state").status_code == 401


def _signed_in(c) -> None:  # type: ignore[no-untyped-def]
    token = mint_operator_token(AUTH, "vera", "viewer")
    assert c.get(f"/ops?token={token}", follow_redirects=False).status_code == 303


def test_a_past_state_is_replayed_outside_the_server_and_says_where_it_started(
    server,  # type: ignore[no-untyped-def]
) -> None:
    with server.client() as c:
        r = c.post("/drivers", json={"name": "D", "home": {"lat": 37.77, "lng": -122.42}},
                   headers={"Idempotency-Key": str(uuid.uuid4())})  # fmt: skip
        assert r.status_code == 201, r.text
        _signed_in(c)
        now = datetime.now(UTC)
        before = c.get("/ops/state", params={"at": (now - timedelta(hours=1)).isoformat()})
        after = c.get("/ops/state", params={"at": now.isoformat()})

    assert before.status_code == 200, before.text
    assert after.status_code == 200, after.text
    assert before.json()["replayed"] is True and before.json()["drivers_by_status"] == {}
    assert after.json()["drivers_by_status"] == {"offline": 1}  # registered, not online
    assert "folded from the start" in after.json()["note"]  # no history point yet


@pytest.mark.parametrize(
    ("at", "why"),
    [("yesterday", "is not an ISO 8601 time"), ("2999-01-01T00:00:00Z", "is in the future")],
)
def test_a_past_state_at_a_bad_time_is_422_with_the_reason(server, at, why) -> None:  # type: ignore[no-untyped-def]
    with server.client() as c:
        _signed_in(c)
        answer = c.get("/ops/state", params={"at": at})
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_time" and why in answer.json()["reason"]


def test_a_past_state_needs_the_pages_session(server) -> None:  # type: ignore[no-untyped-def]
    with server.client() as c:
        assert c.get("/ops/state", params={"at": "2026-01-01T00:00:00Z"}).status_code == 401
