"""Operators are principals of their own: `dispatch operator-token --name --role` issues a
token whose subject is the named operator's id (the same for every token of that name)
and whose `operator` claim carries the name and role; bad names and roles are refused, and
so is an operator token that names no operator (the shared `operator` identity before)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from dispatch.adapters.jwt.codec import PyJwtCodec
from dispatch.api.auth import AuthSettings, TokenError, decode, tokens_for
from dispatch.cli import app
from dispatch.domain.operators import operator_id
from dispatch.tokens import KeyRing, Operator, mint

STRONG = "q7VbN2mXe9LwR4tYc8KpJ3sHd6FgZ1uA5oI0vBnMxQe"
NOW = 1_800_000_000.0


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_AUTH_SECRET", STRONG)
    monkeypatch.setenv("DISPATCH_AUTH_ENVIRONMENT", "production")


def _issue(*args: str) -> str:
    result = CliRunner().invoke(app, ["operator-token", *args])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_the_command_issues_a_token_for_the_named_operator_and_role(env: None) -> None:
    principal = decode(AuthSettings(), _issue("--name", "alice", "--role", "dispatcher"))
    assert principal.role == "operator"
    assert principal.operator == Operator("alice", "dispatcher")
    assert principal.sub == str(operator_id("alice"))
    assert str(uuid.UUID(principal.sub)) == principal.sub  # an id, like any other subject


def test_the_same_name_is_the_same_operator_in_every_token(env: None) -> None:
    first = decode(AuthSettings(), _issue("--name", "alice", "--role", "viewer"))
    again = decode(AuthSettings(), _issue("--name", "alice", "--role", "admin"))
    other = decode(AuthSettings(), _issue("--name", "bob", "--role", "viewer"))
    assert first.sub == again.sub != other.sub
    assert again.operator is not None and again.operator.role == "admin"


def test_the_json_pair_refreshes_into_the_same_operator(env: None) -> None:
    issued = json.loads(_issue("--name", "carol", "--role", "admin", "--json"))
    tokens = tokens_for(AuthSettings())
    refresh = tokens.read(issued["refresh_token"], "refresh", time.time())
    assert refresh.operator == Operator("carol", "admin")
    renewed = tokens.issue(refresh.sub, refresh.role, time.time(), refresh.operator)
    again = tokens.principal(renewed.access_token, time.time())
    assert (again.sub, again.operator) == (refresh.sub, Operator("carol", "admin"))


def test_the_command_issues_tokens_of_the_token_version_asked_for(env: None) -> None:
    """After a revocation an admin issues the operator tokens of their new version."""
    assert decode(AuthSettings(), _issue("--name", "alice", "--role", "viewer")).ver == 0
    again = _issue("--name", "alice", "--role", "viewer", "--token-version", "3")
    assert decode(AuthSettings(), again).ver == 3
    pair = json.loads(
        _issue("--name", "alice", "--role", "admin", "--json", "--token-version", "2")
    )
    tokens = tokens_for(AuthSettings())
    assert tokens.read(pair["refresh_token"], "refresh", time.time()).ver == 2
    assert tokens.principal(pair["access_token"], time.time()).ver == 2


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ["--name", "alice", "--role", "viewer", "--token-version", "-1"],
            "greater than or equal to 0",
        ),
        (["--name", "alice", "--role", "viewer", "--token-version", "x"], "valid integer"),
        (["--name", "Alice", "--role", "viewer"], "lowercase"),
        (["--name", "al ice", "--role", "viewer"], "lowercase"),
        (["--name", "a" * 33, "--role", "viewer"], "1 to 32"),
        (["--name", "", "--role", "viewer"], "1 to 32"),
        (["--name", "alice", "--role", "root"], "viewer, dispatcher, admin"),
        (["--name", "alice", "--role", "operator"], "viewer, dispatcher, admin"),
        (["--role", "viewer"], "--name"),
        (["--name", "alice"], "--role"),
    ],
)
def test_a_bad_name_or_role_is_refused_with_the_reason(
    env: None, args: list[str], reason: str
) -> None:
    result = CliRunner().invoke(app, ["operator-token", *args])
    assert result.exit_code == 2
    assert reason in " ".join(result.output.replace("│", " ").split())  # the box wraps lines


def _signed(claims: dict[str, object]) -> str:
    return PyJwtCodec(KeyRing({"default": STRONG}, "default")).sign(claims)


def test_an_operator_token_that_names_no_operator_is_refused_with_the_reason() -> None:
    """The shared identity of before (subject `operator`, no operator claim) is not taken:
    nothing could say which person acted."""
    claims = mint(str(operator_id("x")), "operator", "access", NOW, 600, Operator("x", "admin"))
    shared = claims.as_json() | {"sub": "operator"}
    del shared["operator"]
    tokens = tokens_for(AuthSettings(secret=SecretStr(STRONG)))
    with pytest.raises(TokenError, match=r"must name its operator .*--name NAME --role ROLE"):
        tokens.principal(_signed(shared), NOW)


@pytest.mark.parametrize(
    ("operator", "reason"),
    [
        ({"name": "mallory", "role": "admin"}, "not the named operator's id"),
        ({"name": "alice", "role": "root"}, "operator role 'root' is not one of"),
        ({"name": "Alice", "role": "admin"}, "operator name 'Alice' is not"),
        ({"name": "alice"}, "no name or role"),
    ],
)
def test_an_operator_claim_that_does_not_fit_is_refused(
    operator: dict[str, str], reason: str
) -> None:
    claims = mint(
        str(operator_id("alice")), "operator", "access", NOW, 600, Operator("alice", "admin")
    )
    tokens = tokens_for(AuthSettings(secret=SecretStr(STRONG)))
    with pytest.raises(TokenError, match=reason):
        tokens.principal(_signed(claims.as_json() | {"operator": operator}), NOW)


def test_only_an_operator_token_carries_an_operator() -> None:
    with pytest.raises(ValueError, match="subject is its operator's id"):
        mint(str(operator_id("bob")), "operator", "access", NOW, 600, Operator("alice", "admin"))
    with pytest.raises(ValueError, match="subject is its operator's id"):
        mint(str(operator_id("bob")), "driver", "access", NOW, 600, Operator("bob", "admin"))
