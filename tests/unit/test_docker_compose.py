"""docker-compose.yml cannot run here (no Docker engine): validate it against the Compose
Specification's JSON Schema and keep it consistent with the local secured cluster
(scripts/kafka/cluster.properties.template, scripts/kafka/secure.sh) and the engine.

The schema is the compose-spec project's ``compose-spec.json`` as the check-jsonschema
package ships it (its ``vendor.compose-spec`` built-in schema; a dev dependency)."""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

import kafka_local_secure
import pytest
import yaml
from jsonschema.validators import validator_for
from kafka_local_secure import (
    ADMIN_PASSWORD,
    STORE_PASSWORD,
    properties_of,
    secure_properties,
)

from dispatch.api.settings import ApiLimits
from dispatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "compose"
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
ENGINE = ("topics", "acls", "worker", "api-1", "api-2")
# Each engine service's Kafka principal (docs/SECURITY.md): admin makes topics and ACLs.
PRINCIPALS = {
    "topics": "admin",
    "acls": "admin",
    "worker": "dispatch-worker",
    "api-1": "dispatch-api",
    "api-2": "dispatch-api",
}
# KAFKA_* variables that the image reads itself (files in /etc/kafka/secrets): they become
# properties the broker ignores.
IMAGE_ONLY = {"ssl.keystore.filename", "ssl.keystore.credentials", "ssl.key.credentials"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


@functools.cache
def compose_validator() -> Any:
    """A validator of the Compose Specification's schema, as the installed check-jsonschema
    package ships it (checked to be a valid schema of its own draft)."""
    text = (files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    assert schema["title"] == "Compose Specification"
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = compose_validator()
    return [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def broker_properties(env: dict[str, Any]) -> dict[str, str]:
    """The server properties the apache/kafka image makes of KAFKA_* variables: the name
    after KAFKA_, lower case, _ for ., ___ for - and __ for _ (as broker-entrypoint.sh)."""
    skip = {"KAFKA_OPTS", "KAFKA_HEAP_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS"}
    props = {}
    for name, value in env.items():
        if name.startswith("KAFKA_") and name not in skip:
            key = name.removeprefix("KAFKA_").lower().replace("_", ".")
            key = key.replace("...", "-").replace("..", "_")
            props[key] = str(value)
    return props


def local_secure_cluster() -> dict[str, str]:
    """The local secured cluster's broker settings that are the same on every node and
    every machine: the template's, then what secure.sh's secure_properties appends, run in
    bash (tests/kafka_local_secure.py; the later key wins, as in the rendered
    server.properties); values made per node or per start are left out."""
    template = properties_of((ROOT / "scripts/kafka/cluster.properties.template").read_text())
    with tempfile.TemporaryDirectory(prefix="secure-properties-") as tmp:
        secure = secure_properties(Path(tmp))
        per_node = (tmp, kafka_local_secure.HOST, STORE_PASSWORD, ADMIN_PASSWORD, "@")
    merged = {**template, **secure}
    return {k: v for k, v in merged.items() if not any(part in v for part in per_node)}


def script_users(path: Path, variable: str) -> list[str]:
    found = re.search(rf"^{variable}=\(([^)]*)\)$", path.read_text(), re.MULTILINE)
    assert found, f"no {variable}=(...) in {path}"
    return found.group(1).split()


# --- The Compose Specification ---------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


@pytest.mark.parametrize(
    ("breakage", "where"),
    [
        ("unknown service key", "services/api-1:"),
        ("health check interval as a number", "services/kafka-1/healthcheck/interval:"),
        ("unknown depends_on condition", "services/worker/depends_on:"),
        ("ports as a mapping", "services/balancer/ports:"),
        ("secret with no source key it knows", "secrets/kafka-admin-password:"),
    ],
)
def test_the_schema_check_fails_on_a_broken_compose_file(breakage: str, where: str) -> None:
    broken = copy.deepcopy(compose())
    services = broken["services"]
    if breakage == "unknown service key":
        services["api-1"]["entrypiont"] = ["dispatch"]
    elif breakage == "health check interval as a number":
        services["kafka-1"]["healthcheck"]["interval"] = 5
    elif breakage == "unknown depends_on condition":
        services["worker"]["depends_on"]["acls"]["condition"] = "service_done"
    elif breakage == "ports as a mapping":
        services["balancer"]["ports"] = {"8000": "8000"}
    else:
        broken["secrets"]["kafka-admin-password"] = {"value": "not-a-source"}
    errors = schema_errors(broken)
    assert any(error.startswith(where) for error in errors), errors


# --- The same cluster as scripts/kafka-local.sh start --brokers 3 --secure -------------


def test_three_kafka_4_nodes_in_kraft_mode_in_one_static_quorum() -> None:
    services = compose()["services"]
    voters = []
    for node_id, name in enumerate(BROKERS, start=1):
        kafka = services[name]
        assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
        env = kafka["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_NODE_ID"] == str(node_id)
        assert env["KAFKA_LISTENERS"] == "SASL_SSL://:9092,CONTROLLER://:9093"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"SASL_SSL://{name}:9092"
        assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
        assert f"{name}-data:/var/lib/kafka/data" in kafka["volumes"]
        voters.append(f"{node_id}@{name}:9093")
        assert env["CLUSTER_ID"] == services["kafka-1"]["environment"]["CLUSTER_ID"]
    for name in BROKERS:
        assert services[name]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] == ",".join(voters)
    # The TLS init runs keytool from the brokers' own image (its JRE has it).
    assert services["kafka-tls"]["image"] == services["kafka-1"]["image"]
    assert services["kafka-tls"]["environment"]["BROKER_HOSTS"] == ",".join(BROKERS)


def test_every_broker_has_the_local_secured_clusters_settings() -> None:
    expected = local_secure_cluster()
    # The guarantees the docs claim must be among what is compared, whatever the files say.
    for key in (
        "default.replication.factor",
        "min.insync.replicas",
        "unclean.leader.election.enable",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "broker.session.timeout.ms",
        "broker.heartbeat.interval.ms",
        "listener.security.protocol.map",
        "inter.broker.listener.name",
        "sasl.enabled.mechanisms",
        "sasl.mechanism.inter.broker.protocol",
        "listener.name.controller.ssl.client.auth",
        "authorizer.class.name",
        "super.users",
        "allow.everyone.if.no.acl.found",
    ):
        assert key in expected, f"{key} is no longer a fixed setting of the local cluster"
    assert expected["min.insync.replicas"] == "2"
    assert expected["broker.session.timeout.ms"] == "3000"
    assert expected["allow.everyone.if.no.acl.found"] == "false"
    services = compose()["services"]
    for name in BROKERS:
        actual = broker_properties(services[name]["environment"])
        differ = {k: (v, actual.get(k)) for k, v in expected.items() if actual.get(k) != v}
        assert differ == {}, f"{name}: (local cluster, compose) differ: {differ}"
        extra = set(actual) - set(expected) - IMAGE_ONLY
        assert extra <= {
            "node.id",
            "controller.quorum.voters",
            "listeners",
            "advertised.listeners",
            "log.dirs",
            "auto.create.topics.enable",
            "ssl.keystore.location",
            "ssl.truststore.location",
        }, f"{name} sets {extra}, which the local cluster does not"


def test_brokers_get_every_principals_credential_from_secrets() -> None:
    data = compose()
    users = script_users(ROOT / "scripts/kafka/secure.sh", "SECURE_USERS")
    entrypoint = DEPLOY / "broker-entrypoint.sh"
    assert script_users(entrypoint, "users") == users
    assert "--add-scram" in entrypoint.read_text()
    wanted = {f"kafka-{user}-password" for user in users}
    assert set(data["secrets"]) == wanted
    for name in BROKERS:
        kafka = data["services"][name]
        assert kafka["entrypoint"] == ["bash", "/deploy/broker-entrypoint.sh"]
        assert "./deploy/compose:/deploy:ro" in kafka["volumes"]
        assert "kafka-broker-tls:/etc/kafka/secrets:ro" in kafka["volumes"]
        assert set(kafka["secrets"]) == wanted


def test_deploy_scripts_exist_and_parse() -> None:
    for name in ("broker-entrypoint.sh", "make-tls.sh"):
        script = DEPLOY / name
        assert script.is_file()
        subprocess.run(["bash", "-n", str(script)], check=True)
    tls = compose()["services"]["kafka-tls"]
    assert tls["entrypoint"] == ["bash", "/deploy/make-tls.sh"]


# --- The engine's services ---------------------------------------------------------------


def test_engine_services_use_only_settings_the_engine_knows() -> None:
    services = compose()["services"]
    fields = [*Settings.model_fields, *ApiLimits.model_fields]  # the API's limits too
    known = {f"DISPATCH_{name.upper()}" for name in fields}
    for name in ENGINE:
        env = services[name]["environment"]
        unknown = {
            k
            for k in env
            if k.startswith("DISPATCH_") and not k.startswith("DISPATCH_AUTH_") and k not in known
        }
        assert unknown == set(), f"{name} sets unknown settings {unknown}"
        assert env["DISPATCH_KAFKA_BOOTSTRAP"] == ",".join(f"{b}:9092" for b in BROKERS)


def test_engine_services_connect_as_their_own_principal_over_sasl_ssl() -> None:
    services = compose()["services"]
    for name, user in PRINCIPALS.items():
        service = services[name]
        env = service["environment"]
        assert env["DISPATCH_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["DISPATCH_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["DISPATCH_KAFKA_USERNAME"] == user
        assert "DISPATCH_KAFKA_PASSWORD" not in env
        secret = f"kafka-{user}-password"
        assert service["secrets"] == [secret], f"{name} gets only its own password"
        assert env["DISPATCH_KAFKA_PASSWORD_FILE"] == f"/run/secrets/{secret}"
        cafile = Path(env["DISPATCH_KAFKA_SSL_CAFILE"])
        assert f"kafka-client-ca:{cafile.parent}:ro" in service["volumes"]
    # The CA's key stays with the init service; the engine sees only the certificate.
    assert "kafka-ca:/var/lib/dispatch-ca" in services["kafka-tls"]["volumes"]
    for name, service in services.items():
        if name != "kafka-tls":
            assert not any(v.startswith("kafka-ca:") for v in service.get("volumes", [])), name


def cli_command(words: list[str]) -> Any:
    """The click command a service's ``command`` runs (the image's entrypoint is dispatch)."""
    from typer.main import get_command

    from dispatch.cli import app

    command: Any = get_command(app)
    for word in words:
        if word.startswith("-") or not hasattr(command, "commands"):
            break
        assert word in command.commands, f"unknown command {word} in {words}"
        command = command.commands[word]
    return command


def test_engine_services_run_real_cli_commands() -> None:
    services = compose()["services"]
    for name in ENGINE:
        words = services[name]["command"]
        command = cli_command(words)
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for word in words:
            if word.startswith("--"):
                assert word in options, f"{name}: {word} is not an option of {words}"
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["acls"]["command"] == ["topics", "acls", "--apply"]


def test_services_start_in_order() -> None:
    services = compose()["services"]

    def waits_for(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in services[name].get("depends_on", {}).items()}

    for name in BROKERS:
        assert waits_for(name) == {"kafka-tls": "service_completed_successfully"}
    assert waits_for("topics") == dict.fromkeys(BROKERS, "service_healthy")
    assert waits_for("acls") == {"topics": "service_completed_successfully"}
    for name in ("worker", "api-1", "api-2"):
        assert waits_for(name) == {"acls": "service_completed_successfully"}
    assert waits_for("balancer") == {"api-1": "service_healthy", "api-2": "service_healthy"}
    # The apps reach the instances through the balancer alone, on loopback.
    assert services["balancer"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "ports" not in services["api-1"] and "ports" not in services["api-2"]
    assert services["worker"]["deploy"]["replicas"] == 2


def test_the_balancer_uses_the_repository_config_on_both_instances() -> None:
    services = compose()["services"]
    balancer = services["balancer"]
    mount = "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
    assert mount in balancer["volumes"]
    config = (ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    for variable in ("DISPATCH_BALANCER_BIND", "DISPATCH_API_1", "DISPATCH_API_2"):
        assert f'"${{{variable}}}"' in config and variable in balancer["environment"]
    assert balancer["environment"]["DISPATCH_API_1"] == "api-1:8000"
    assert balancer["environment"]["DISPATCH_API_2"] == "api-2:8000"
    assert "option httpchk GET /readyz" in config


def test_every_long_running_service_has_a_health_check() -> None:
    services = compose()["services"]
    one_shot = {
        dependency
        for service in services.values()
        for dependency, how in service.get("depends_on", {}).items()
        if how["condition"] == "service_completed_successfully"
    }
    assert one_shot == {"kafka-tls", "topics", "acls"}
    for name, service in services.items():
        if name in one_shot:
            assert service.get("restart", "no") == "no", f"{name} runs once"
            continue
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


# --- Secrets -----------------------------------------------------------------------------


def variables_read(text: str) -> set[str]:
    """The variables Compose reads from its environment: ${NAME...} and secret sources."""
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    names |= {s["environment"] for s in yaml.safe_load(text)["secrets"].values()}
    return names


def test_no_secret_literal_in_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    data = yaml.safe_load(text)
    assert not re.search(r"password\s*=\s*[\"']?[A-Za-z0-9]", text, re.IGNORECASE)
    for source in data["secrets"].values():
        assert set(source) == {"environment"}, "secrets come from the user's environment"
    for name, service in data["services"].items():
        for key, value in service.get("environment", {}).items():
            if not re.search(r"PASSWORD|SECRET|JAAS|CREDENTIALS|TOKEN", key):
                continue
            value = str(value)
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), (name, key)
            elif key.endswith("_CREDENTIALS"):  # the image reads /etc/kafka/secrets/<value>
                assert re.fullmatch(r"[a-z.]+", value), (name, key)
            else:
                assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", value), (name, key)


def test_the_example_env_file_names_every_variable_and_holds_no_secret() -> None:
    example = DEPLOY / "example.env"
    values = dict(
        line.split("=", 1)
        for line in example.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert set(values) == variables_read((ROOT / "docker-compose.yml").read_text())
    for name, value in values.items():
        assert value.startswith("change-me"), f"{name} in example.env looks like a real value"
    # A copied local.env is ignored by git; the example is not.
    assert {"*.env", "!example.env"} <= set((DEPLOY / ".gitignore").read_text().splitlines())
