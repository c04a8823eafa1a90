"""scripts/kafka/secure.sh's broker settings and kafka-local.sh's --bench-listeners checks,
with no Java and no broker: secure.sh's functions run in bash (tests/kafka_local_secure.py),
and every kafka-local.sh call here must stop with exit 2 before any jar or JVM work (the jar
cache and JAVA_HOME point at nothing)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from kafka_local_secure import HOST, secure_properties

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kafka-local.sh"
ALL_THREE = "SASL_PLAINTEXT:29301,29302,29303 PLAINTEXT:29101,29102,29103 SSL:29201,29202,29203"
BASE_SUPERS = "User:admin;User:CN=dispatch-broker"


def test_without_benchmark_listeners_only_sasl_ssl_and_the_controller(tmp_path: Path) -> None:
    props = secure_properties(tmp_path, node=2)
    assert props["listeners"] == f"SASL_SSL://{HOST}:19093,CONTROLLER://{HOST}:19193"
    assert props["advertised.listeners"] == f"SASL_SSL://{HOST}:19093"
    assert props["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
    assert props["super.users"] == BASE_SUPERS
    assert not [k for k in props if "bench" in k]


def test_sasl_plaintext_alone_adds_no_anonymous_super_user(tmp_path: Path) -> None:
    props = secure_properties(tmp_path, node=1, bench="SASL_PLAINTEXT:29301,29302,29303")
    assert props["listeners"] == (
        f"SASL_SSL://{HOST}:19092,CONTROLLER://{HOST}:19192,BENCH_SASL_PLAINTEXT://{HOST}:29301"
    )
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:SSL,SASL_SSL:SASL_SSL,BENCH_SASL_PLAINTEXT:SASL_PLAINTEXT"
    )
    assert props["super.users"] == BASE_SUPERS
    assert (
        "ScramLoginModule"
        in props["listener.name.bench_sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    )


@pytest.mark.parametrize("node", [1, 2, 3])
def test_all_three_add_anonymous_and_each_nodes_own_ports(tmp_path: Path, node: int) -> None:
    props = secure_properties(tmp_path, node=node, bench=ALL_THREE)
    client, controller = 19091 + node, 19191 + node
    bench = [("PLAINTEXT", 29100 + node), ("SSL", 29200 + node), ("SASL_PLAINTEXT", 29300 + node)]
    assert props["listeners"] == ",".join(
        [f"SASL_SSL://{HOST}:{client}", f"CONTROLLER://{HOST}:{controller}"]
        + [f"BENCH_{proto}://{HOST}:{port}" for proto, port in bench]
    )
    assert props["advertised.listeners"] == ",".join(
        [f"SASL_SSL://{HOST}:{client}"] + [f"BENCH_{p}://{HOST}:{port}" for p, port in bench]
    )
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:SSL,SASL_SSL:SASL_SSL,BENCH_PLAINTEXT:PLAINTEXT,BENCH_SSL:SSL,"
        "BENCH_SASL_PLAINTEXT:SASL_PLAINTEXT"
    )
    assert props["super.users"] == BASE_SUPERS + ";User:ANONYMOUS"
    assert props["inter.broker.listener.name"] == "SASL_SSL"


def kafka_local(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KAFKA_LOCAL_")
        and k not in {"JAVA_HOME", "KAFKA_LOCAL_BENCH_LISTENERS"}
    }
    env |= {
        "KAFKA_LOCAL_CLUSTER_DIR": str(tmp_path / "cluster"),
        "KAFKA_LOCAL_STATE_DIR": str(tmp_path / "broker"),
        "KAFKA_LOCAL_CACHE": str(tmp_path / "cache"),
        "JAVA_HOME": str(tmp_path / "no-java"),
        "KAFKA_LOCAL_CLUSTER_PORTS": "29092,29093,29094",
        "KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS": "29192,29193,29194",
        "KAFKA_LOCAL_PORT": "29095",
        "KAFKA_LOCAL_CONTROLLER_PORT": "29195",
    }
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_refused_early(tmp_path: Path, done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert not (tmp_path / "cache").exists()  # no jar fetched
    assert not (tmp_path / "cluster" / "node-1").exists()  # nothing formatted
    assert "already in use" not in done.stderr
    return done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ("start", "--brokers", "3", "--bench-listeners", "PLAINTEXT:29101,29102,29103"),
            "--bench-listeners is for benchmarking the secured cluster only",
        ),
        (
            ("start", "--bench-listeners", "PLAINTEXT:29101,29102,29103"),
            "--bench-listeners is for benchmarking the secured three-node cluster only",
        ),
        (
            ("start", "--brokers", "3", "--secure", "--bench-listeners", "HTTP:1,2,3"),
            "--bench-listeners: 'HTTP:1,2,3' is not PROTOCOL:port1,port2,port3",
        ),
        (
            ("start", "--brokers", "3", "--secure", "--bench-listeners", "SSL:1,2"),
            "--bench-listeners (SSL) must list 3 ports",
        ),
        (
            ("start", "--brokers", "3", "--secure", "--bench-listeners", "SSL:1,2,3 SSL:4,5,6"),
            "--bench-listeners lists SSL twice",
        ),
        (
            ("start", "--brokers", "3", "--secure", "--bench-listeners"),
            "--bench-listeners needs a SPEC",
        ),
    ],
)
def test_a_start_with_bench_listeners_it_cannot_take_exits_2_first(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    assert says in assert_refused_early(tmp_path, kafka_local(tmp_path, *args))


def recorded_cluster(tmp_path: Path, bench: str) -> None:
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    (cluster / "cluster.env").write_text(
        "BROKERS=3\nCLUSTER_ID=AAAAAAAAAAAAAAAAAAAAAA\nPORTS=29092,29093,29094\n"
        f"CONTROLLER_PORTS=29192,29193,29194\nSECURE=1\nBENCH_LISTENERS={bench}\n"
    )


SSL_ONLY = "SSL:29201,29202,29203"
SECURE_START = ("start", "--brokers", "3", "--secure")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ("start", "--brokers", "3", "--secure"),
            f"start it with --secure --bench-listeners '{SSL_ONLY}' again",
        ),
        (
            (
                "start",
                "--brokers",
                "3",
                "--secure",
                "--bench-listeners",
                "PLAINTEXT:29101,29102,29103",
            ),
            f"made with benchmark listeners '{SSL_ONLY}', not 'PLAINTEXT:29101,29102,29103'",
        ),
    ],
)
def test_a_later_start_of_a_bench_cluster_must_repeat_its_listeners(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    recorded_cluster(tmp_path, SSL_ONLY)
    assert says in assert_refused_early(tmp_path, kafka_local(tmp_path, *args))


def test_bench_listeners_are_refused_on_a_cluster_made_without_them(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    (cluster / "cluster.env").write_text(
        "BROKERS=3\nCLUSTER_ID=AAAAAAAAAAAAAAAAAAAAAA\nPORTS=29092,29093,29094\n"
        "CONTROLLER_PORTS=29192,29193,29194\nSECURE=1\n"
    )
    done = kafka_local(
        tmp_path, "start", "--brokers", "3", "--secure", "--bench-listeners", SSL_ONLY
    )
    assert "was made without benchmark listeners" in assert_refused_early(tmp_path, done)


def test_a_damaged_recorded_spec_is_a_clear_error(tmp_path: Path) -> None:
    recorded_cluster(tmp_path, "SSL:29201,oops")
    done = kafka_local(tmp_path, "status", "--brokers", "3")
    assert done.returncode == 2, done.stderr
    assert f"damaged BENCH_LISTENERS in {tmp_path}/cluster/cluster.env" in done.stderr
    assert "unbound variable" not in done.stderr


def test_status_of_a_bench_cluster_warns(tmp_path: Path) -> None:
    recorded_cluster(tmp_path, "PLAINTEXT:29101,29102,29103")
    done = kafka_local(tmp_path, "status", "--brokers", "3")
    assert done.returncode == 1  # not running
    assert "WARNING: benchmark listeners PLAINTEXT:29101,29102,29103" in done.stderr
    assert "ANONYMOUS is a super user" in done.stderr
    assert "for benchmarks only" in done.stderr
