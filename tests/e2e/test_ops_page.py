"""The operations page's sign-in and reads (dispatch.api.ops_page), against a real uvicorn
server: the token exchanged at once for a cookie of the page's reads only."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from test_api_abuse_limits import AUTH, serving

from dispatch.api.auth import mint_operator_token
from dispatch.api.ops_page import COOKIE


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
