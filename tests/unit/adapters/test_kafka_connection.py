"""How a process reaches the brokers (``eventstore.connection``, ``config.connection_of``):
plaintext by default, TLS and SASL/SCRAM when set, and bad combinations refused with the
reason before any client is made."""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.persistence import InfrastructureFactoryError
from pydantic import SecretStr

from dispatch.adapters.kafka.config import connection_of
from dispatch.adapters.kafka.eventstore import KafkaFactory
from dispatch.adapters.kafka.eventstore.clients import consumer_config, producer_config
from dispatch.adapters.kafka.eventstore.connection import KafkaConnection, describe_connection
from dispatch.bootstrap import kafka_env
from dispatch.settings import Settings

SERVERS = "127.0.0.1:1,127.0.0.1:2"


@pytest.fixture
def cafile(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def secured(cafile: Path) -> KafkaConnection:
    return KafkaConnection(SERVERS, "SASL_SSL", "SCRAM-SHA-512", "dispatch-api", "s3cret", cafile)


def test_nothing_set_is_the_plain_bootstrap_list() -> None:
    assert connection_of(Settings(kafka_bootstrap=SERVERS)) == SERVERS
    assert producer_config(SERVERS)["bootstrap_servers"] == SERVERS
    assert "security_protocol" not in consumer_config(SERVERS)
    assert describe_connection(SERVERS).startswith("PLAINTEXT, no authentication")


def test_sasl_ssl_settings_reach_every_client_config(cafile: Path) -> None:
    settings = Settings(
        kafka_bootstrap=SERVERS,
        kafka_security_protocol="SASL_SSL",
        kafka_username="dispatch-api",
        kafka_password=SecretStr("s3cret"),
        kafka_ssl_cafile=cafile,
    )
    connection = connection_of(settings)
    assert connection == secured(cafile)
    for config in (producer_config(connection), consumer_config(connection)):
        assert config["security_protocol"] == "SASL_SSL"
        assert config["sasl_mechanism"] == "SCRAM-SHA-512"
        assert config["sasl_plain_username"] == "dispatch-api"
        assert config["sasl_plain_password"] == "s3cret"
        assert config["ssl_cafile"] == str(cafile)
        assert config["ssl_check_hostname"] is True


def test_the_password_is_read_from_its_file_and_never_shown(cafile: Path, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    settings = Settings(
        kafka_bootstrap=SERVERS,
        kafka_security_protocol="SASL_SSL",
        kafka_username="dispatch-worker",
        kafka_password_file=secret,
        kafka_ssl_cafile=cafile,
    )
    connection = connection_of(settings)
    assert isinstance(connection, KafkaConnection)
    assert connection.password == "from-file"
    assert "from-file" not in repr(connection)
    assert "from-file" not in connection.describe()
    assert "as dispatch-worker (SCRAM-SHA-512)" in connection.describe()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs a username and a password"),
        ({"kafka_username": "x", "kafka_password": SecretStr("y")}, "does not authenticate"),
        ({"kafka_ssl_cafile": Path("/nonexistent/ca.pem")}, "has no TLS"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": Path("/nonexistent/ca.pem")},
            "CA file /nonexistent/ca.pem is missing",
        ),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_username": "x",
                "kafka_password_file": Path("/nonexistent/password"),
            },
            "cannot read the Kafka password file /nonexistent/password",
        ),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_username": "x",
                "kafka_password": SecretStr("y"),
                "kafka_password_file": Path("/nonexistent/password"),
            },
            "not both",
        ),
    ],
)
def test_a_bad_combination_is_refused_with_its_reason(
    changes: dict[str, object], reason: str
) -> None:
    settings = Settings.model_validate({"kafka_bootstrap": SERVERS, **changes})
    with pytest.raises(ValueError, match=reason):
        connection_of(settings)


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "password"
    empty.write_text("\n")
    settings = Settings(
        kafka_bootstrap=SERVERS,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="x",
        kafka_password_file=empty,
    )
    with pytest.raises(ValueError, match="is empty"):
        connection_of(settings)


def test_the_event_store_gets_the_same_connection_through_its_environment(cafile: Path) -> None:
    env = kafka_env(secured(cafile), "dispatch", 3)
    factory = KafkaFactory(env)
    assert factory.settings.bootstrap == secured(cafile)
    assert KafkaFactory(kafka_env(SERVERS, "dispatch", 3)).settings.bootstrap == SERVERS


def test_the_event_store_refuses_a_bad_connection_in_its_environment() -> None:
    env = kafka_env(SERVERS, "dispatch", 0) | {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}
    with pytest.raises(InfrastructureFactoryError, match="needs a username and a password"):
        KafkaFactory(env)


def test_a_password_in_the_event_store_environment_without_sasl_is_refused_not_dropped() -> None:
    env = kafka_env(SERVERS, "dispatch", 0) | {"KAFKA_SASL_PASSWORD": "s3cret"}
    with pytest.raises(InfrastructureFactoryError, match="does not authenticate"):
        KafkaFactory(env)


def test_a_password_file_line_is_taken_as_it_is(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("  spaced pass  \n")
    settings = Settings(
        kafka_bootstrap=SERVERS,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="x",
        kafka_password_file=secret,
    )
    connection = connection_of(settings)
    assert isinstance(connection, KafkaConnection)
    assert connection.password == "  spaced pass  "


def test_tls_alone_and_sasl_alone_each_set_only_their_own_part(
    cafile: Path, tmp_path: Path
) -> None:
    """The two halves of SASL_SSL, which scripts/bench_kafka_security.py measures apart:
    SSL checks the brokers' certificates and sends no credentials, SASL_PLAINTEXT sends the
    credentials with no TLS."""
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    tls = connection_of(
        Settings(kafka_bootstrap=SERVERS, kafka_security_protocol="SSL", kafka_ssl_cafile=cafile)
    )
    assert tls == KafkaConnection(SERVERS, "SSL", ssl_cafile=cafile)
    config = producer_config(tls)
    assert config["security_protocol"] == "SSL"
    assert config["ssl_cafile"] == str(cafile)
    assert config["ssl_check_hostname"] is True
    assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & set(config)
    assert tls.describe() == (
        f"SSL, TLS checked against {cafile}, no authentication: any client that reaches a "
        "broker can read and write every topic"
    )

    sasl = connection_of(
        Settings(
            kafka_bootstrap=SERVERS,
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_username="admin",
            kafka_password_file=secret,
        )
    )
    assert sasl == KafkaConnection(SERVERS, "SASL_PLAINTEXT", "SCRAM-SHA-512", "admin", "s3cret")
    config = consumer_config(sasl)
    assert config["security_protocol"] == "SASL_PLAINTEXT"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "admin"
    assert config["sasl_plain_password"] == "s3cret"
    assert not {"ssl_cafile", "ssl_check_hostname"} & set(config)
    assert sasl.describe() == "SASL_PLAINTEXT, as admin (SCRAM-SHA-512)"
