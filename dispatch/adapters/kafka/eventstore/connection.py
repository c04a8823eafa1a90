"""How a process reaches the brokers: their addresses, and the listener's security (TLS,
SASL/SCRAM credentials naming the principal the ACLs apply to).

Every Kafka client of the project is built from a ``Connection``: a plain ``host:port,...``
string is a plaintext connection with no authentication (the single local broker's
default), a ``KafkaConnection`` carries the security too. The password is kept out of
``repr`` and of every message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
PROTOCOLS: tuple[Protocol, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: tuple[Mechanism, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """The brokers' addresses and how to talk to them.

    ``SASL_*`` needs ``username`` and ``password``; ``SSL``/``SASL_SSL`` check the brokers'
    certificates against ``ssl_cafile`` (the system's CAs when None). Bad combinations are a
    ValueError that says what is missing.
    """

    servers: str
    security_protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None

    def __post_init__(self) -> None:
        if not self.servers.strip():
            raise ValueError("no bootstrap servers")
        if self.security_protocol not in PROTOCOLS:
            raise ValueError(
                f"security protocol {self.security_protocol!r} is not one of {', '.join(PROTOCOLS)}"
            )
        if self.sasl_mechanism not in MECHANISMS:
            raise ValueError(
                f"SASL mechanism {self.sasl_mechanism!r} is not one of {', '.join(MECHANISMS)}"
            )
        if self.sasl and not (self.username and self.password):
            raise ValueError(f"{self.security_protocol} needs a username and a password")
        if not self.sasl and (self.username or self.password):
            raise ValueError(
                f"a username or password is given but {self.security_protocol} does not "
                "authenticate: use SASL_SSL (or SASL_PLAINTEXT)"
            )
        if self.ssl_cafile is not None:
            if not self.tls:
                raise ValueError(f"a CA file is given but {self.security_protocol} has no TLS")
            if not self.ssl_cafile.is_file():
                raise ValueError(f"the CA file {self.ssl_cafile} is missing")

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol.endswith("SSL")

    def client_config(self) -> dict[str, Any]:
        """The kafka-python settings for this connection."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl:
            config |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        if self.tls:
            config["ssl_check_hostname"] = True
            if self.ssl_cafile is not None:
                config["ssl_cafile"] = str(self.ssl_cafile)
        return config

    def describe(self) -> str:
        """What an operator should know of it (never the password)."""
        parts: list[str] = [self.security_protocol]
        if self.tls:
            parts.append(f"TLS checked against {self.ssl_cafile or 'the system CAs'}")
        if self.sasl:
            parts.append(f"as {self.username} ({self.sasl_mechanism})")
        else:
            parts.append(OPEN)
        return ", ".join(parts)


Connection = str | KafkaConnection
OPEN = "no authentication: any client that reaches a broker can read and write every topic"


def connection_config(connection: Connection) -> dict[str, Any]:
    """The kafka-python settings that reach the brokers over ``connection``."""
    if isinstance(connection, KafkaConnection):
        return connection.client_config()
    return {"bootstrap_servers": connection}


def servers_of(connection: Connection) -> str:
    """The bootstrap list alone (for messages and logs)."""
    return connection.servers if isinstance(connection, KafkaConnection) else connection


def describe_connection(connection: Connection) -> str:
    if isinstance(connection, KafkaConnection):
        return connection.describe()
    return f"PLAINTEXT, {OPEN}"
