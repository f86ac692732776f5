"""The production-like deployment, checked without Docker.

``docker-compose.yml`` against the Compose Specification schema (the copy that
check-jsonschema vendors) and against what the services need: durable Kafka (three KRaft
nodes, replication 3, min.insync.replicas 2, idempotent producers with acks=all), MongoDB
as an initiated replica set written with w=majority, tokens that must be given, readiness
probes. The topic initialisation script is run with stand-in Kafka tools; the service
healthcheck is run against a stand-in HTTP server. Then ``deploy/Dockerfile``,
``.dockerignore``, the Prometheus configuration and alert rules, and the Grafana
provisioning and dashboard.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
import urllib.parse
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from seminarops_shared.events.topics import ALL_TOPICS, REGISTRATION_REQUESTS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "seminar-ops.json"

SERVICE_PORTS = {"registration": 8001, "seminar": 8002, "feedback": 8003, "metrics": 8004}

# Every metric name a dashboard panel or an alert may use: what the services export.
KNOWN_METRICS = frozenset(
    {
        "seminarops_participants",
        "seminarops_registrations",
        "seminarops_evaluations",
        "seminarops_response_rate_pct",
        "seminarops_consumer_lag",
        "seminarops_event_processing_seconds_bucket",
        "seminarops_dlq_records_total",
        "seminarops_outbox_backlog",
        "seminarops_events_processed_total",
        "seminarops_http_requests_total",
        "up",
    }
)
_METRIC_TOKEN = re.compile(r"\b(seminarops_[a-z0-9_]+)\b")
_UP_SELECTOR = re.compile(r"\bup\s*(\{|$|\s|\))")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")

DAY_MS = 86_400_000


def expected_retention_ms(topic: str) -> str:
    """As in deploy/kubernetes/base/kafka-topics.yaml: the internal event topics are kept
    forever (the metrics rebuild replays them from the earliest offset), inbound requests
    7 days (personal data), dead letters 90 days."""
    if topic.endswith(".dlq"):
        return str(90 * DAY_MS)
    if topic == REGISTRATION_REQUESTS:
        return str(7 * DAY_MS)
    return "-1"


# ----------------------------------------------------------------------------- helpers


@cache
def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def compose() -> dict[str, Any]:
    """A fresh copy per test: tests may mutate it."""
    return copy.deepcopy(_compose())


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as Compose hands it to the container (before interpolation)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return dict(pairs)
    result: dict[str, str] = {}
    for key, value in env.items():
        if isinstance(value, bool):
            result[key] = "true" if value else "false"
        else:
            result[key] = "" if value is None else str(value)
    return result


def unescape_compose(text: str) -> str:
    """What the container gets for a literal with no interpolation: ``$$`` becomes ``$``.

    A lone ``$`` would be interpolated by Compose from the host's environment, which a
    script in the file never means: that is a failure here.
    """
    lone = re.findall(r"(?<!\$)\$(?!\$)", text.replace("$$", ""))
    assert not lone, "unescaped $ in a compose literal: Compose would interpolate it"
    return text.replace("$$", "$")


# What `make compose-secrets` and the operator would put in the environment: stand-ins.
STAND_IN_VARIABLES = {
    "KAFKA_BROKER_PASSWORD": "b0b0",
    "KAFKA_ADMIN_PASSWORD": "adad",
    "MONGODB_ROOT_PASSWORD": "r00t",
    **{
        f"{name.upper()}_KAFKA_PASSWORD": f"k{index}k{index}"
        for index, name in enumerate(SERVICE_PORTS)
    },
    **{
        f"{name.upper()}_MONGODB_PASSWORD": f"m{index}m{index}"
        for index, name in enumerate(SERVICE_PORTS)
    },
    "AUTH_TOKENS": '{"operator": ["t"]}',
    "PRIVACY_PSEUDONYM_KEY": "0123456789abcdef",
}
_INTERPOLATION = re.compile(r"(?<!\$)\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(value: str, variables: dict[str, str] | None = None) -> str:
    """``value`` as Compose hands it over with ``variables`` set (stand-ins by default):
    ``${NAME}``, ``${NAME:-default}``; ``${NAME:?message}`` fails when NAME is unset."""
    known = STAND_IN_VARIABLES if variables is None else variables

    def substitute(match: re.Match[str]) -> str:
        name, kind, argument = match.groups()
        if known.get(name):
            return known[name]
        assert kind != "?", f"${name} is required: {argument}"
        return argument if kind == "-" else ""

    return _INTERPOLATION.sub(substitute, value)


def interpolated_environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: interpolate(value) for key, value in environment(service).items()}


def one_shot_services(compose: dict[str, Any]) -> set[str]:
    """Services others wait for with service_completed_successfully: jobs, not daemons."""
    names: set[str] = set()
    for service in compose["services"].values():
        for name, dependency in (service.get("depends_on") or {}).items():
            if isinstance(dependency, dict) and (
                dependency.get("condition") == "service_completed_successfully"
            ):
                names.add(name)
    return names


def kafka_brokers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("apache/kafka")
        and "KAFKA_PROCESS_ROLES" in environment(service)
    }


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source for the short volume syntax (``src:dst[:mode]``)."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume.get("source", "")
        else:
            source, target, *_ = volume.split(":")
            mounts[target] = source
    return mounts


def metric_names(expr: str) -> set[str]:
    names = set(_METRIC_TOKEN.findall(expr))
    if _UP_SELECTOR.search(expr):
        names.add("up")
    return names


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels") or [])


# ------------------------------------------------------------------- compose: the schema


@cache
def _compose_validator() -> jsonschema.protocols.Validator:
    vendored = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _schema_errors(document: dict[str, Any]) -> list[str]:
    errors = _compose_validator().iter_errors(document)
    return sorted(f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors)


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert _schema_errors(compose) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "registration", "helthcheck"), {"test": ["CMD", "true"]}),
        (("services", "registration", "depends_on", "mongodb-init", "condition"), "service_ready"),
        (("services", "registration", "healthcheck", "interval"), 10),
    ],
)
def test_the_schema_check_rejects_a_broken_file(
    compose: dict[str, Any], path: tuple[str, ...], value: object
) -> None:
    # The validation above means something only if a typo makes it fail.
    node = compose
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert _schema_errors(compose) != []


# ------------------------------------------------------------- compose: every container


def test_every_long_running_service_has_a_healthcheck_and_restarts(
    compose: dict[str, Any],
) -> None:
    jobs = one_shot_services(compose)
    for name, service in compose["services"].items():
        if name in jobs:
            assert service.get("restart", "no") == "no", f"{name} is a job: it must not restart"
            continue
        healthcheck = service.get("healthcheck") or {}
        assert not healthcheck.get("disable"), f"{name}: healthcheck disabled"
        test = healthcheck.get("test")
        assert isinstance(test, list), f"{name}: no healthcheck"
        assert test[0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck {test!r}"
        assert len(test) > 1, f"{name}: empty healthcheck"
        assert service.get("restart") in {"always", "unless-stopped", "on-failure"}, name


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec.get("condition")
            assert condition in {"service_healthy", "service_completed_successfully"}, (
                f"{name} -> {dependency}: {condition}"
            )
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), dependency


def test_services_are_built_from_the_one_dockerfile(compose: dict[str, Any]) -> None:
    for name in SERVICE_PORTS:
        service = compose["services"][name]
        build = service["build"]
        assert (ROOT / build["context"]).resolve() == ROOT
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert service["command"] == ["python", "-m", name]
        assert environment(service).get("SERVICE", name) == name


@pytest.mark.parametrize(("name", "port"), SERVICE_PORTS.items())
def test_service_environment(compose: dict[str, Any], name: str, port: int) -> None:
    service = compose["services"][name]
    env = environment(service)
    prefix = name.upper()
    assert env[f"{prefix}_PORT"] == str(port)
    assert env[f"{prefix}_HOST"] == "0.0.0.0"
    assert env[f"{prefix}_LOG_JSON"] == "true"
    # Compose refuses to start without tokens (`:?`), never falls back to an open service.
    assert re.fullmatch(r"\$\{AUTH_TOKENS:\?[^}]+\}", env["AUTH_TOKENS"]), env["AUTH_TOKENS"]
    # The same for the erasure pseudonym key: one variable for every service.
    assert env["AUTH_REQUIRED"] == "true"  # and '{}' as tokens stops the service
    key = env["PRIVACY_PSEUDONYM_KEY"]
    assert re.fullmatch(r"\$\{PRIVACY_PSEUDONYM_KEY:\?[^}]+\}", key), key
    assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "true"
    assert env["KAFKA_ACKS"] == "all"
    assert env["KAFKA_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_PARTITIONS"] == "6"

    brokers = kafka_brokers(compose)
    internal = {
        listener.removeprefix("INTERNAL://")
        for broker in brokers.values()
        for listener in environment(broker)["KAFKA_ADVERTISED_LISTENERS"].split(",")
        if listener.startswith("INTERNAL://")
    }
    assert set(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == internal

    uri = urllib.parse.urlsplit(interpolate(env["MONGODB_URI"]))
    query = urllib.parse.parse_qs(uri.query)
    assert uri.scheme == "mongodb"
    assert query.get("w") == ["majority"]
    assert query.get("replicaSet") == ["rs0"]
    assert "directConnection" not in query
    assert uri.hostname in compose["services"]

    published = [str(p).rsplit(":", 1)[-1] for p in service.get("ports") or []]
    assert published == [str(port)]
    assert service["depends_on"] == {
        "kafka-init": {"condition": "service_completed_successfully"},
        "mongodb-init": {"condition": "service_completed_successfully"},
    }


class _Readiness(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status if self.path == "/health/ready" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def readiness_server() -> Iterator[tuple[int, type[_Readiness]]]:
    handler = type("Readiness", (_Readiness,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("name", "port"), SERVICE_PORTS.items())
def test_service_healthcheck_probes_readiness(
    compose: dict[str, Any],
    readiness_server: tuple[int, type[_Readiness]],
    name: str,
    port: int,
) -> None:
    test = compose["services"][name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], "python urllib, the image has no curl"
    code = test[3]
    url = f"http://127.0.0.1:{port}/health/ready"
    assert url in code

    # Run the probe itself against a stand-in: healthy on 200 only.
    fake_port, handler = readiness_server
    probe = code.replace(f"127.0.0.1:{port}", f"127.0.0.1:{fake_port}")

    def run_probe() -> int:
        return subprocess.run(
            [sys.executable, "-c", probe], check=False, capture_output=True, timeout=30
        ).returncode

    handler.status = 200
    assert run_probe() == 0
    handler.status = 503
    assert run_probe() != 0


# ------------------------------------------------------------------------ compose: Kafka


def test_kafka_is_three_combined_kraft_nodes(compose: dict[str, Any]) -> None:
    brokers = kafka_brokers(compose)
    assert len(brokers) == 3
    envs = {name: environment(service) for name, service in brokers.items()}

    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1
    node_ids = {name: env["KAFKA_NODE_ID"] for name, env in envs.items()}
    assert len(set(node_ids.values())) == 3
    for name, env in envs.items():
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        voters = {
            tuple(voter.split(":")[0].split("@"))
            for voter in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        }
        assert voters == {(node_id, host) for host, node_id in node_ids.items()}, name
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        # The log directory is a volume of its own, so a restart keeps the data.
        mounts = volume_mounts(brokers[name])
        assert env["KAFKA_LOG_DIRS"] in mounts
        assert mounts[env["KAFKA_LOG_DIRS"]] in (compose.get("volumes") or {})
    log_volumes = [volume_mounts(b)[environment(b)["KAFKA_LOG_DIRS"]] for b in brokers.values()]
    assert len(set(log_volumes)) == 3


_STUB_TOOL = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *args]) + "\\n")
if "--describe" in args:
    topic = args[args.index("--topic") + 1]
    print(f"Topic: {{topic}}\\tTopicId: x\\tPartitionCount: {{os.environ['STUB_PARTITIONS']}}"
          f"\\tReplicationFactor: {{os.environ['STUB_REPLICATION']}}\\tConfigs: ")
"""


def _run_kafka_init(
    compose: dict[str, Any], tools: Path, *, partitions: str = "6", replication: str = "3"
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    init = compose["services"]["kafka-init"]
    assert init["image"] == next(iter(kafka_brokers(compose).values()))["image"]
    command = init["command"]
    script = unescape_compose(command[0] if isinstance(command, list) else command)
    assert init["entrypoint"][0] == "/bin/bash"

    tools.mkdir()
    for tool in ("kafka-topics.sh", "kafka-configs.sh", "kafka-acls.sh"):
        path = tools / tool
        path.write_text(_STUB_TOOL.format(python=sys.executable), encoding="utf-8")
        path.chmod(0o755)
    log = tools / "calls.jsonl"
    env = {
        **interpolated_environment(init),
        "TOOLS_DIR": str(tools),
        "CLIENT_CONFIG": str(tools / "run" / "admin.properties"),
        "STUB_LOG": str(log),
        "STUB_PARTITIONS": partitions,
        "STUB_REPLICATION": replication,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    result = subprocess.run(
        [*init["entrypoint"], script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return result, calls


def _options(args: list[str]) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for flag, value in itertools.pairwise(args):
        if flag.startswith("--") and not value.startswith("--"):
            options.setdefault(flag, []).append(value)
    return options


def _declarations(
    calls: list[list[str]],
) -> tuple[dict[str, dict[str, list[str]]], dict[str, dict[str, str]]]:
    """The options of every ``--create`` and the settings of every ``--alter``, by topic."""
    created: dict[str, dict[str, list[str]]] = {}
    altered: dict[str, dict[str, str]] = {}
    for tool, *args in calls:
        options = _options(args)
        if tool == "kafka-topics.sh" and "--create" in args:
            created[options["--topic"][0]] = options
        elif tool == "kafka-configs.sh" and options["--entity-type"] == ["topics"]:
            settings = options["--add-config"][0].split(",")
            altered[options["--entity-name"][0]] = dict(s.split("=", 1) for s in settings)
    return created, altered


def retention_problems(
    created: dict[str, dict[str, list[str]]], altered: dict[str, dict[str, str]]
) -> list[str]:
    """Each topic created and converged with the retention of its class, no size limit."""
    problems = []
    for topic, options in created.items():
        configs = dict(c.split("=", 1) for c in options["--config"])
        expected = {"retention.ms": expected_retention_ms(topic), "retention.bytes": "-1"}
        for key, value in expected.items():
            if configs.get(key) != value:
                problems.append(f"{topic}: created with {key}={configs.get(key)} != {value}")
            if altered.get(topic, {}).get(key) != value:
                problems.append(f"{topic}: converged to {key}={altered.get(topic, {}).get(key)}")
    return problems


def test_kafka_init_declares_every_topic_durably(compose: dict[str, Any], tmp_path: Path) -> None:
    result, calls = _run_kafka_init(compose, tmp_path / "tools")
    assert result.returncode == 0, result.stderr

    bootstrap = environment(compose["services"]["registration"])["KAFKA_BOOTSTRAP_SERVERS"]
    for _, *args in calls:
        assert _options(args)["--bootstrap-server"] == [bootstrap]
    created, altered = _declarations(calls)
    assert sorted(created) == sorted(ALL_TOPICS)
    assert sorted(altered) == sorted(ALL_TOPICS)
    for topic, options in created.items():
        assert options["--partitions"] == ["6"], topic
        assert options["--replication-factor"] == ["3"], topic
        configs = dict(c.split("=", 1) for c in options["--config"])
        assert configs["min.insync.replicas"] == "2", topic
        assert configs["cleanup.policy"] == "delete", topic
        # Existing topics are converged to the same settings.
        assert altered[topic]["min.insync.replicas"] == "2", topic
    assert retention_problems(created, altered) == []


@pytest.mark.parametrize(
    ("variable", "value", "topic"),
    [
        ("EVENT_RETENTION_MS", "2592000000", "registration.events"),  # 30 days, not forever
        ("REQUEST_RETENTION_MS", "-1", REGISTRATION_REQUESTS),  # personal data kept forever
        ("DLQ_RETENTION_MS", "2592000000", "feedback.events.dlq"),  # 30 days, not 90
    ],
)
def test_the_retention_check_catches_a_wrong_retention(
    compose: dict[str, Any], tmp_path: Path, variable: str, value: str, topic: str
) -> None:
    init = compose["services"]["kafka-init"]  # the fixture is a fresh copy per test
    assert variable in init["environment"]
    init["environment"][variable] = value
    result, calls = _run_kafka_init(compose, tmp_path / "tools")
    assert result.returncode == 0, result.stderr
    problems = retention_problems(*_declarations(calls))
    assert any(p.startswith(f"{topic}: ") for p in problems), problems


def test_kafka_init_refuses_a_topic_with_other_partitions(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    result, _ = _run_kafka_init(compose, tmp_path / "tools", partitions="3")
    assert result.returncode != 0
    assert "other partitions or replication" in result.stderr


# ---------------------------------------------------------------------- compose: MongoDB


def test_mongodb_is_an_initiated_replica_set(compose: dict[str, Any]) -> None:
    services = compose["services"]
    uri = urllib.parse.urlsplit(interpolate(environment(services["registration"])["MONGODB_URI"]))
    assert uri.hostname is not None
    mongodb = services[uri.hostname]
    assert str(mongodb["image"]).startswith("mongo:")
    command = mongodb["command"]
    command = command if isinstance(command, list) else command.split()
    assert command[command.index("--replSet") + 1] == "rs0"
    assert urllib.parse.parse_qs(uri.query)["replicaSet"] == ["rs0"]

    # mongodb-init initiates it (as root: authentication is on) before any service starts.
    init = services["mongodb-init"]
    assert init["depends_on"] == {uri.hostname: {"condition": "service_healthy"}}
    env = environment(init)
    assert env["REPLICA_SET"] == "rs0"
    assert env["MONGODB_ADDRESS"] == f"{uri.hostname}:{uri.port or 27017}"
    script = init["command"][0]
    assert (
        "replSetInitiate: {_id: env('REPLICA_SET'), members: [{_id: 0, host: env('MONGODB_ADDRESS')}]}"
        in script
    )
    assert "NotYetInitialized" in script, "initiated once, left alone afterwards"
    assert "isWritablePrimary" in script, "done only once this member is a writable primary"
    assert "/data/db" in volume_mounts(mongodb)


# ------------------------------------------------------------------------------ Dockerfile


def _dockerfile_instructions() -> list[tuple[str, str]]:
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def _workspace_members() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    members: list[str] = []
    for pattern in pyproject["tool"]["uv"]["workspace"]["members"]:
        members += sorted(
            str(path.parent.relative_to(ROOT)) for path in ROOT.glob(f"{pattern}/pyproject.toml")
        )
    return members


def _copy_sources() -> list[str]:
    sources: list[str] = []
    for keyword, rest in _dockerfile_instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        paths = [token for token in rest.split() if not token.startswith("--")]
        sources += paths[:-1]
    return sources


def test_dockerfile_is_multi_stage_non_root_and_installs_the_lock() -> None:
    instructions = _dockerfile_instructions()
    first_from = next(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    global_args = dict(
        rest.split("=", 1) for keyword, rest in instructions[:first_from] if keyword == "ARG"
    )
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], rest.split()[0])
        for keyword, rest in instructions
        if keyword == "FROM"
    ]
    assert len(bases) >= 2
    assert all(base == "python:3.11-slim" for base in bases), bases

    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert re.search(r"pip install \"?uv==", runs), "uv comes from PyPI, pinned"
    assert re.search(r"uv sync [^;&]*--frozen[^;&]*--no-dev", runs)
    assert "HEALTHCHECK" not in {keyword for keyword, _ in instructions}

    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    users = [rest for keyword, rest in instructions[last_from:] if keyword == "USER"]
    assert users, "the runtime stage drops root"
    assert users[-1].split(":")[0] not in {"root", "0"}

    cmd = json.loads(next(rest for keyword, rest in instructions if keyword == "CMD"))
    assert "$SERVICE" in cmd[-1]
    assert all(name in cmd[-1] for name in SERVICE_PORTS)


# Workspace members that are development tooling: a dev dependency of the root project
# only, never sent to the image builder, never installed in the image.
DEV_ONLY_MEMBERS = frozenset({"devtools"})


def test_dockerfile_installs_every_runtime_member_and_no_dev_tooling() -> None:
    members = _workspace_members()
    runtime = ["shared", *(f"services/{name}" for name in SERVICE_PORTS)]
    assert sorted(members) == sorted([*runtime, *DEV_ONLY_MEMBERS])
    sources = {source.rstrip("/") for source in _copy_sources()}
    for member in runtime:
        assert f"{member}/pyproject.toml" in sources, member
        assert f"{member}/src" in sources, member
    assert {"pyproject.toml", "uv.lock"} <= sources
    for member in DEV_ONLY_MEMBERS:
        copied = [s for s in sources if s == member or s.startswith(f"{member}/")]
        assert not copied, f"the image must not contain {member}: {copied}"
        assert not _in_build_context(f"{member}/pyproject.toml"), member
        assert not _in_build_context(f"{member}/src/seminarops_devtools/devstack.py"), member
    # Every sync in the image leaves the dev group out and installs no extra member.
    syncs = [
        rest
        for keyword, rest in _dockerfile_instructions()
        if keyword == "RUN" and "uv sync" in rest
    ]
    assert syncs
    for command in syncs:
        assert "--no-dev" in command, command
        for flag in ("--all-packages", "--all-groups", "--group", "--only-dev", "--package"):
            assert flag not in command, command


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/?|\*|\?)", pattern):
            if part.startswith("**"):
                regex += "(.*/)?" if part.endswith("/") else ".*"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            else:
                regex += re.escape(part)
        rules.append((include, re.compile(regex)))
    return rules


def _in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parents = [str(p) for p in reversed(Path(path).parents) if str(p) != "."] + [path]
    included = True
    for include, regex in _dockerignore_rules():
        if any(regex.fullmatch(candidate) for candidate in parents):
            included = include
    return included


def test_dockerignore_sends_the_build_inputs_and_nothing_else() -> None:
    for source in _copy_sources():
        path = ROOT / source
        assert path.exists(), source
        inputs = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in inputs:
            relative = str(file.relative_to(ROOT))
            if "__pycache__" in file.parts or fnmatch.fnmatch(file.name, "*.py[cod]"):
                assert not _in_build_context(relative), relative
            else:
                assert _in_build_context(relative), relative
    # Keys, certificates and passwords of `make compose-secrets` never reach the image.
    secrets = ("deploy/tls/generated/ca-key.pem", "deploy/secrets/generated/compose.env")
    for outside in (
        ".venv/pyvenv.cfg",
        ".git/HEAD",
        "tests/deploy/test_compose.py",
        ".run/x",
        *secrets,
    ):
        assert not _in_build_context(outside), outside


# ------------------------------------------------------------------------------ Prometheus


def test_prometheus_scrapes_every_service(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    flags = dict(
        flag.removeprefix("--").split("=", 1) for flag in prometheus["command"] if "=" in flag
    )
    config_file = Path(flags["config.file"])
    mounts = volume_mounts(prometheus)
    assert (ROOT / mounts[str(config_file.parent)]).resolve() == PROMETHEUS_DIR

    config = yaml.safe_load((PROMETHEUS_DIR / config_file.name).read_text(encoding="utf-8"))
    scraped: dict[str, str] = {}
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                scraped[target] = job.get("metrics_path", "/metrics")
    for name, port in SERVICE_PORTS.items():
        assert name in compose["services"]
        assert scraped.get(f"{name}:{port}") == "/metrics", f"{name}:{port} not scraped"

    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file(), rule_file
    assert "alerts.yml" in config["rule_files"]


def _alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
    groups = document["groups"]
    assert groups
    rules: list[dict[str, Any]] = []
    for group in groups:
        assert group["name"]
        assert group["rules"], group["name"]
        rules += group["rules"]
    return rules


def test_alert_rules_are_complete() -> None:
    rules = _alert_rules()
    names = [rule.get("alert") for rule in rules]
    assert all(names), "recording rules do not belong in alerts.yml"
    assert len(set(names)) == len(names)
    for rule in rules:
        name = rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert isinstance(rule.get("expr"), str), name
        assert rule["expr"].strip(), name
        assert _DURATION.match(str(rule.get("for", ""))), f"{name}: for"
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, name
        assert str(rule.get("annotations", {}).get("summary", "")).strip(), name
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")"), name
        assert expr.count("{") == expr.count("}"), name
        used = metric_names(expr)
        assert used, f"{name} uses no known metric"
        assert used <= KNOWN_METRICS, f"{name}: {used - KNOWN_METRICS}"


@pytest.mark.parametrize(
    "metric",
    [
        "up",
        "seminarops_consumer_lag",
        "seminarops_dlq_records_total",
        "seminarops_outbox_backlog",
        "seminarops_events_processed_total",
        "seminarops_http_requests_total",
    ],
)
def test_an_alert_watches(metric: str) -> None:
    assert any(metric in metric_names(rule["expr"]) for rule in _alert_rules())


# --------------------------------------------------------------------------------- Grafana


def _datasources() -> list[dict[str, Any]]:
    directory = GRAFANA_DIR / "provisioning" / "datasources"
    sources: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.y*ml")):
        sources += yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    return sources


def test_grafana_provisioning_matches_compose(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = volume_mounts(grafana)
    assert (ROOT / mounts["/etc/grafana/provisioning"]).resolve() == GRAFANA_DIR / "provisioning"

    (datasource,) = _datasources()
    assert datasource["type"] == "prometheus"
    url = urllib.parse.urlsplit(datasource["url"])
    assert url.hostname in compose["services"]
    assert str(mounts.get("/etc/grafana/provisioning", "")).startswith("./deploy/grafana")
    assert url.port == 9090
    assert datasource["uid"]

    directory = GRAFANA_DIR / "provisioning" / "dashboards"
    (path,) = sorted(directory.glob("*.y*ml"))
    (provider,) = yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]
    dashboards_in_container = provider["options"]["path"]
    assert (ROOT / mounts[dashboards_in_container]).resolve() == DASHBOARD_FILE.parent

    password = environment(grafana)["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), "no default password"


def test_dashboard_panels_query_known_metrics() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    assert dashboard["uid"]
    assert dashboard["title"]
    datasource_uids = {source["uid"] for source in _datasources()}
    variables = {variable["name"] for variable in dashboard.get("templating", {}).get("list", [])}
    for variable in dashboard.get("templating", {}).get("list", []):
        assert metric_names(str(variable.get("definition", ""))) <= KNOWN_METRICS

    panels = list(dashboard_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids)
    queried: dict[str, list[str]] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert all(isinstance(grid[key], int) for key in ("x", "y", "w", "h")), panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            assert not panel.get("targets")
            continue
        title = panel["title"]
        assert panel["datasource"]["uid"] in datasource_uids, title
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"]["uid"] in datasource_uids, title
            used = metric_names(expr)
            assert used, f"{title}: no known metric in {expr!r}"
            assert used <= KNOWN_METRICS, f"{title}: {used - KNOWN_METRICS}"
            for variable in re.findall(r"\$(\w+)", expr):
                assert variable.startswith("__") or variable in variables, f"{title}: ${variable}"
            for metric in used:
                queried.setdefault(metric, []).append(expr)

    breakdowns = {
        "seminarops_participants": "kind",
        "seminarops_registrations": "status",
        "seminarops_evaluations": "rating",
        "seminarops_response_rate_pct": "kind",
    }
    for metric, label in breakdowns.items():
        assert any(f"by ({label})" in expr for expr in queried.get(metric, [])), metric
    for metric in (
        "seminarops_consumer_lag",
        "seminarops_dlq_records_total",
        "seminarops_outbox_backlog",
    ):
        assert metric in queried, metric
    latency = queried.get("seminarops_event_processing_seconds_bucket", [])
    for quantile in ("0.5", "0.99"):
        assert any(f"histogram_quantile({quantile}," in expr for expr in latency), quantile
