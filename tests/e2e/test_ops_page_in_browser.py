"""``/ops`` in Debian's headless Chromium with no way out to the network (its proxy answers
nothing), driven over the DevTools protocol: after sign-in the page draws the drivers the
test put there, and moves one when the test moves it through the API; its time slider
shows a past moment replayed from the view history, then goes back to live."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tools import chromium

from dispatch.adapters.sqlite.viewhistory import SqliteViewHistory, view_history_path
from dispatch.api.auth import mint_operator_token
from tests.e2e.served_api import AUTH, serving

websockets_sync = pytest.importorskip("websockets.sync.client")

HOME = {"lat": 37.7749, "lng": -122.4194}


class Browser:
    def __init__(self, profile: Path) -> None:
        cmd = [
            chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--disable-sync",
            "--disable-component-update", "--proxy-server=127.0.0.1:9",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            url = found.group(1) if found else None
        assert url is not None, "chromium did not open its DevTools port"
        port = url.split(":")[2].split("/")[0]
        import urllib.request

        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json").read())
        page = next(t for t in targets if t["type"] == "page")
        self._connection = websockets_sync.connect(page["webSocketDebuggerUrl"], max_size=None)
        self.ws = self._connection.__enter__()
        self.n = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self.n:
                assert "error" not in msg, msg
                return dict(msg["result"])

    def eval(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)[
            "result"
        ].get("value")

    def wait(self, expression: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"not in time: {expression}")

    def close(self) -> None:
        self._connection.__exit__(None, None, None)
        self.proc.terminate()
        self.proc.wait(10)


def online_drivers(c: Any, n: int) -> list[tuple[str, dict[str, str]]]:
    """``n`` drivers registered, online and pinged a kilometre apart going north, through
    the API: each one's id and authorization header."""
    drivers = []
    for i in range(n):
        r = c.post("/drivers", json={"name": f"D{i}", "home": HOME},
                   headers={"Idempotency-Key": str(uuid.uuid4())})  # fmt: skip
        assert r.status_code == 201, r.text
        auth = {"Authorization": f"Bearer {r.json()['token']['access_token']}"}
        did = r.json()["driver_id"]
        assert c.post(f"/drivers/{did}/online", headers=auth).status_code == 200
        ping = {"lat": 37.77 + 0.01 * i, "lng": -122.42}
        assert c.post(f"/drivers/{did}/location", headers=auth, json=ping).status_code == 202
        drivers.append((did, auth))
    return drivers


@pytest.mark.slow
def test_the_page_draws_the_drivers_and_follows_one_that_moves(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as server, server.client() as c:
        drivers = online_drivers(c, 3)
        token = mint_operator_token(AUTH, "vera", "viewer")
        browser = Browser(tmp_path / "profile")
        try:
            browser.call("Page.enable")
            browser.call("Page.navigate", url=f"{server.url}/ops?token={token}")
            count = "document.querySelectorAll('circle.driver').length"
            assert browser.wait(f"{count} === 3 && {count}") == 3
            assert browser.eval("location.href") == f"{server.url}/ops", "the token left the URL"
            assert browser.eval("document.cookie") == "", "the session cookie is HttpOnly"
            moved, auth = drivers[0]
            ping = {"lat": 37.80, "lng": -122.40}
            assert c.post(f"/drivers/{moved}/location", headers=auth, json=ping).status_code == 202
            where = f"document.querySelector('circle[data-driver-id=\"{moved}\"]')"
            browser.wait(f"{where} && {where}.dataset.lat === '37.8' "
                         f"&& {where}.dataset.lng === '-122.4'")  # fmt: skip
        finally:
            browser.close()


@pytest.mark.slow
def test_the_time_slider_shows_a_past_state_replayed_from_the_view_history(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    engine = {"views_save_every_s": 0.2, "view_history_every_s": 0.5}
    with serving(data, settings=engine) as server, server.client() as c:
        drivers = online_drivers(c, 2)
        history = SqliteViewHistory(view_history_path(data), keep=10)
        deadline = time.monotonic() + 20
        while not _holds(history, [d for d, _ in drivers]):
            # A point is added once the log's time has moved ``view_history_every_s`` past
            # the last one: an event more than that after the pings makes one that holds them.
            assert time.monotonic() < deadline, "no view history point with both positions"
            time.sleep(0.6)
            key = {"Idempotency-Key": str(uuid.uuid4())}
            r = c.post("/riders", json={"name": "R"}, headers=key)
            assert r.status_code == 201, r.text
            time.sleep(0.3)
        time.sleep(1.5)
        middle = datetime.now(UTC)
        time.sleep(1.5)
        gone, auth = drivers[0]
        assert c.post(f"/drivers/{gone}/offline", headers=auth).status_code == 200
        token = mint_operator_token(AUTH, "vera", "viewer")
        browser = Browser(tmp_path / "profile")
        try:
            browser.call("Page.enable")
            browser.call("Page.navigate", url=f"{server.url}/ops?token={token}")
            circle = f"document.querySelector('circle[data-driver-id=\"{gone}\"]')"
            count = "document.querySelectorAll('circle.driver').length"
            browser.wait(f"{count} === 1 && !{circle}")  # live: an offline driver is not drawn
            at = middle.strftime("%Y-%m-%dT%H:%M:%S")
            field = "document.getElementById('time-at')"
            browser.eval(f"{field}.value = '{at}'")
            browser.eval(f"{field}.dispatchEvent(new Event('change'))")
            mode = "document.getElementById('map').dataset.mode"
            assert browser.wait(f"['past', 'failed'].includes({mode}) && {mode}", 60) == "past"
            assert browser.wait(f"{circle} && {circle}.dataset.status") == "available"
            note = browser.eval("document.getElementById('past-note').textContent")
            assert "folded from the view history point" in note and "2 available" in note
            assert browser.eval("document.getElementById('status').textContent").startswith(
                "past: " + middle.strftime("%Y-%m-%dT%H:%M:%S")
            )
            browser.eval("document.getElementById('live').click()")
            assert browser.wait(f"{mode} === 'live' && {count} === 1 && !{circle}")
        finally:
            browser.close()


def _holds(history: SqliteViewHistory, drivers: list[str]) -> bool:
    point = history.at_or_before(time.time() + 3600)
    return point is not None and all(d in point.positions for d in drivers)
