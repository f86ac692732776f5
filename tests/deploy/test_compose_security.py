"""Transport security of ``docker-compose.yml``, checked without Docker.

What a running Compose deployment would show, proved as far as it can be here:

- every service reaches Kafka over SASL_SSL with SCRAM-SHA-512 and the local CA, as its
  own user, through the settings that exist (the real settings classes read the
  environment Compose would hand over); every MongoDB URI asks for TLS and carries that
  service's credentials, and mongodb-init gives the user its own database only;
- no listener speaks plaintext, and only SASL_SSL listeners (Kafka) and a TLS-only
  MongoDB are published to the host;
- no password is written in the file: each comes from a required variable;
- each Kafka user's ACLs, as kafka-init grants them (its script run with stand-in tools),
  are exactly what the service's subscriptions and its outbox need
  (``seminarops_shared.events.topics``, the tables the services subscribe from);
- the broker start script renders a configuration with those listeners, SCRAM on them,
  the StandardAuthorizer and the two bootstrap SCRAM users;
- mongodb-init's script, run by Node.js over a stand-in for mongosh's globals, initiates
  the replica set once and gives each service a user on its own database only;
- ``deploy/tls/make-certs.sh`` runs (openssl) and makes certificates that verify against
  its CA with the names the clients connect to, in a real TLS handshake; tls-init gives
  each server its own key, readable by it alone.

Each check returns its problems as text; ``test_the_checks_catch_a_weakened_file``
weakens the file on purpose to show that every check can fail.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pymongo.uri_parser import parse_uri

from feedback.settings import FeedbackSettings
from metrics.settings import MetricsSettings
from registration.settings import RegistrationSettings
from seminar.settings import SeminarSettings
from seminarops_shared.events.topics import ALL_TOPICS, OWNERS, SUBSCRIPTIONS, dead_letter_topic
from seminarops_shared.settings import ServiceSettings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
MAKE_CERTS = ROOT / "deploy" / "tls" / "make-certs.sh"
MAKE_SECRETS = ROOT / "deploy" / "secrets" / "make-secrets.sh"
START_BROKER = ROOT / "deploy" / "kafka" / "start-broker.sh"

SETTINGS: dict[str, type[ServiceSettings]] = {
    "registration": RegistrationSettings,
    "seminar": SeminarSettings,
    "feedback": FeedbackSettings,
    "metrics": MetricsSettings,
}
TLS_PROTOCOLS = {"SSL", "SASL_SSL"}
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
# The variable that holds a password: never a literal value in the file.
_SECRET_NAME = re.compile(r"PASSWORD|_SECRET$|_KEY$|TOKENS", re.IGNORECASE)
_REQUIRED_VARIABLE = re.compile(r"\$\{(\w+):\?[^}]+\}")


def _load_helper(name: str) -> ModuleType:
    """The helpers of ``test_compose.py`` (pytest's importlib mode puts no test folder
    on sys.path)."""
    module_name = f"_deploy_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, HERE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


base = _load_helper("test_compose")
environment: Callable[[dict[str, Any]], dict[str, str]] = base.environment
interpolate: Callable[[str], str] = base.interpolate
STAND_INS: dict[str, str] = base.STAND_IN_VARIABLES
Compose = dict[str, Any]


@cache
def _compose() -> Compose:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def compose() -> Compose:
    return copy.deepcopy(_compose())


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (short syntax)."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        source, target, *_ = str(volume).split(":")
        mounts[target] = source
    return mounts


def _listeners(env: dict[str, str]) -> dict[str, tuple[str, int]]:
    """Listener name -> (security protocol, port)."""
    protocols = dict(
        entry.split(":", 1) for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    result = {}
    for listener in env["KAFKA_LISTENERS"].split(","):
        name, _, address = listener.partition("://")
        result[name] = (protocols.get(name, name), int(address.rsplit(":", 1)[1]))
    return result


def _brokers(compose: Compose) -> dict[str, dict[str, Any]]:
    return {name: compose["services"][name] for name in KAFKA_NODES}


def _ca_volume_file(compose: Compose, service: dict[str, Any], path: str) -> str | None:
    """The named volume ``path`` lives in, if tls-init fills it with the CA."""
    directory, _, file_name = path.rpartition("/")
    volume = _mounts(service).get(directory)
    tls_init = _mounts(compose["services"]["tls-init"])
    filled = {source: target for target, source in tls_init.items()}
    if volume is None or volume not in filled or volume not in (compose.get("volumes") or {}):
        return None
    return f"{filled[volume]}/{file_name}"


# ------------------------------------------------------------------------ the checks


def problems_service_kafka(compose: Compose, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each service: SASL_SSL, SCRAM-SHA-512, the CA that tls-init places, its own user
    and its own password variable, read by the service's real settings class."""
    problems = []
    for name, settings_class in SETTINGS.items():
        service = compose["services"][name]
        raw = environment(service)
        with monkeypatch.context() as patch:
            for key in list(os.environ):
                if key.startswith(("KAFKA_", "MONGODB_", name.upper() + "_")):
                    patch.delenv(key)
            for key, value in raw.items():
                patch.setenv(key, interpolate(value))
            settings = settings_class()
        kafka = settings.kafka
        if kafka.security_protocol != "SASL_SSL":
            problems.append(f"{name}: Kafka security protocol {kafka.security_protocol}")
        if kafka.sasl_mechanism != "SCRAM-SHA-512":
            problems.append(f"{name}: SASL mechanism {kafka.sasl_mechanism}")
        if kafka.sasl_username != name:
            problems.append(f"{name}: Kafka user {kafka.sasl_username!r}, not its own")
        password = _REQUIRED_VARIABLE.fullmatch(raw.get("KAFKA_SASL_PASSWORD", ""))
        if password is None or password.group(1) != f"{name.upper()}_KAFKA_PASSWORD":
            problems.append(f"{name}: KAFKA_SASL_PASSWORD is not its own required variable")
        placed = _ca_volume_file(compose, service, kafka.ssl_cafile or "")
        if placed is None or not placed.endswith("/ca.pem"):
            problems.append(
                f"{name}: KAFKA_SSL_CAFILE {kafka.ssl_cafile} is not the CA tls-init places"
            )
        if kafka.group(name) != name:
            problems.append(f"{name}: consumer group {kafka.group(name)} is not the ACL's")
    return problems


def problems_service_mongodb(compose: Compose) -> list[str]:
    """Each service's URI: TLS with the placed CA, SCRAM credentials of its own user from
    its own variable; mongodb-init gives that user readWrite on its database only."""
    problems = []
    init = compose["services"]["mongodb-init"]
    init_env = environment(init)
    script = init["command"][0]
    databases = init_env.get("SERVICE_DATABASES", "").split()
    if "roles: [{role: 'readWrite', db: database}]" not in script:
        problems.append(
            "mongodb-init: the service users' role is not readWrite on their own database"
        )
    for name, settings_class in SETTINGS.items():
        service = compose["services"][name]
        raw = environment(service)["MONGODB_URI"]
        credentials = re.match(r"mongodb://([^:@/]+):\$\{(\w+):\?[^}]+\}@", raw)
        if credentials is None:
            problems.append(f"{name}: MONGODB_URI has no user and password variable")
        elif credentials.group(2) != f"{name.upper()}_MONGODB_PASSWORD":
            problems.append(f"{name}: MONGODB_URI password is not its own variable")
        uri = interpolate(raw)
        ca = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query).get("tlsCAFile", [None])[0]
        # The driver's own parser validates every option (a misspelt one fails) and opens
        # the CA file: here a stand-in, the path in the container is checked below.
        parsed = parse_uri(uri.replace(f"tlsCAFile={ca}", f"tlsCAFile={__file__}"))
        options = parsed["options"]
        if parsed["username"] != name:
            problems.append(f"{name}: database user {parsed['username']!r}, not its own")
        if parsed["password"] != STAND_INS[f"{name.upper()}_MONGODB_PASSWORD"]:
            problems.append(f"{name}: database password is not its variable's")
        if options.get("tls") is not True:
            problems.append(f"{name}: MONGODB_URI without tls=true")
        if options.get("tlsAllowInvalidCertificates") or options.get("tlsInsecure"):
            problems.append(f"{name}: MONGODB_URI does not verify the server")
        if ca is None or _ca_volume_file(compose, service, ca) is None:
            problems.append(f"{name}: tlsCAFile {ca} is not the CA tls-init places")
        if options.get("authSource") != "admin":
            problems.append(f"{name}: authSource {options.get('authSource')}, not admin")
        if options.get("authMechanism") != "SCRAM-SHA-256":
            problems.append(f"{name}: authMechanism {options.get('authMechanism')}")
        # ServiceSettings.database_name: the prefix (none in compose) and the service name.
        if "MONGODB_DATABASE_PREFIX" in environment(service):
            problems.append(f"{name}: a database prefix moves it out of its user's database")
        database = str(settings_class.model_fields["service_name"].default)
        if database not in databases:
            problems.append(f"{name}: mongodb-init creates no user for database {database}")
        if parsed["username"] != database:
            problems.append(
                f"{name}: its user is not the one mongodb-init gives database {database}"
            )
    problems.extend(
        f"mongodb-init: {variable} is not a required variable"
        for variable in (f"{d.upper()}_MONGODB_PASSWORD" for d in databases)
        if not _REQUIRED_VARIABLE.fullmatch(init_env.get(variable, ""))
    )
    return problems


def problems_plaintext(compose: Compose) -> list[str]:
    """No Kafka listener without TLS, controllers with mutual TLS, only SASL_SSL published;
    MongoDB requires TLS and authentication; everything published on loopback only."""
    problems = []
    for name, broker in _brokers(compose).items():
        env = environment(broker)
        listeners = _listeners(env)
        for listener, (protocol, _) in listeners.items():
            if protocol not in TLS_PROTOCOLS:
                problems.append(f"{name}: listener {listener} speaks {protocol}")
        advertised = {
            entry.partition("://")[0] for entry in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        }
        problems.extend(
            f"{name}: clients are sent to {listener}, not a SASL_SSL listener"
            for listener in advertised
            if listeners.get(listener, ("?", 0))[0] != "SASL_SSL"
        )
        controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        if listeners.get(controller, ("?", 0))[0] != "SSL":
            problems.append(f"{name}: controller listener is not SSL")
        if env.get(f"KAFKA_LISTENER_NAME_{controller}_SSL_CLIENT_AUTH") != "required":
            problems.append(f"{name}: controller listener does not require the nodes' certificates")
        if listeners.get(env["KAFKA_INTER_BROKER_LISTENER_NAME"], ("?", 0))[0] != "SASL_SSL":
            problems.append(f"{name}: inter-broker listener is not SASL_SSL")
        if env.get("KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM") != "https":
            problems.append(f"{name}: brokers do not verify each other's host names")
        by_port = {port: protocol for protocol, port in listeners.values()}
        for published in broker.get("ports") or []:
            container_port = str(published).rpartition(":")[2]
            if by_port.get(int(container_port)) != "SASL_SSL":
                problems.append(f"{name}: port {container_port} is published without SASL_SSL")
    mongodb = compose["services"]["mongodb"]
    command = mongodb["command"]
    flags = dict(zip(command, [*command[1:], ""], strict=True))
    if flags.get("--tlsMode") != "requireTLS":
        problems.append(f"mongodb: --tlsMode {flags.get('--tlsMode')}")
    if "--auth" not in command or "--keyFile" not in command:
        problems.append("mongodb: authentication (--auth, --keyFile) is off")
    if "--tlsAllowInvalidCertificates" in command or "--tlsAllowInvalidHostnames" in command:
        problems.append("mongodb: invalid certificates are allowed")
    problems.extend(
        f"{name}: {published} is published beyond the host's loopback"
        for name, service in compose["services"].items()
        for published in service.get("ports") or []
        if not str(published).startswith("127.0.0.1:")
    )
    return problems


def _literal_passwords(node: object, where: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}"
            if isinstance(value, str) and _SECRET_NAME.search(str(key)):
                if not re.fullmatch(r"\$\{\w+(:\?[^}]+|:-)\}", value):
                    yield f"{here}: a literal value"
            elif isinstance(value, str) and "://" in value:
                userinfo = urllib.parse.urlsplit(value.split("${")[0] + "x").netloc
                if re.match(r"[^:@]+:[^$@]+@", value.partition("://")[2]):
                    yield f"{here}: a password in a URI ({userinfo})"
            yield from _literal_passwords(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _literal_passwords(value, f"{where}[{index}]")
    elif isinstance(node, str):
        # Scripts: a password is only ever taken from a variable at run time.
        for match in re.finditer(r"password=\"?([^\"\s,;\]]+)", node, re.IGNORECASE):
            if not match.group(1).startswith("$"):
                yield f"{where}: password={match.group(1)}"


def problems_passwords(compose: Compose) -> list[str]:
    """No password, secret or key in the file: every one is a required variable (or an
    optional one that stays empty), and scripts read theirs from the environment."""
    problems = list(_literal_passwords(compose, "compose"))
    used = set(_REQUIRED_VARIABLE.findall(COMPOSE_FILE.read_text(encoding="utf-8")))
    generated = _generated_variables()
    secret_variables = {v for v in used if "PASSWORD" in v and v != "GRAFANA_ADMIN_PASSWORD"}
    problems += [f"{v}: not made by make-secrets.sh" for v in sorted(secret_variables - generated)]
    problems += [
        f"{v}: made by make-secrets.sh, used nowhere" for v in sorted(generated - secret_variables)
    ]
    return problems


@cache
def _generated_variables() -> frozenset[str]:
    text = MAKE_SECRETS.read_text(encoding="utf-8")
    names = set(re.findall(r"\b([A-Z_]+_PASSWORD)\b", text))
    services = re.search(r"services=\(([^)]*)\)", text)
    assert services
    for service in services.group(1).split():
        names |= {f"{service.upper()}_KAFKA_PASSWORD", f"{service.upper()}_MONGODB_PASSWORD"}
    names -= {"_KAFKA_PASSWORD", "_MONGODB_PASSWORD"}
    return frozenset(n for n in names if not n.startswith("_"))


Acl = tuple[str, str, str, str]  # principal, resource type, name, operation


def expected_acls() -> set[Acl]:
    """From the code: Read what the service subscribes to and its group, Write its own
    topic (outbox) and the dead letters of what it reads, Describe every other topic."""
    acls: set[Acl] = set()
    for service, consumed in SUBSCRIPTIONS.items():
        written = {topic for topic, owner in OWNERS.items() if owner == service}
        written |= {dead_letter_topic(topic) for topic in consumed}
        acls.add((service, "group", service, "Read"))
        for topic in ALL_TOPICS:
            operation = "Read" if topic in consumed else "Write" if topic in written else "Describe"
            acls.add((service, "topic", topic, operation))
    return acls


def granted_acls(
    compose: Compose, tmp_path: Path
) -> tuple[set[Acl], dict[str, str], list[list[str]]]:
    """Runs kafka-init with stand-in tools: the ACLs it adds, the SCRAM credentials it
    sets (user -> setting) and every call."""
    result, calls = base._run_kafka_init(compose, tmp_path / "tools")
    assert result.returncode == 0, result.stderr
    acls: set[Acl] = set()
    users: dict[str, str] = {}
    for tool, *args in calls:
        options = base._options(args)
        if tool == "kafka-acls.sh":
            assert "--add" in args, args
            principal = options["--allow-principal"][0].removeprefix("User:")
            kind = "topic" if "--topic" in options else "group"
            acls.add((principal, kind, options[f"--{kind}"][0], options["--operation"][0]))
        elif tool == "kafka-configs.sh" and options["--entity-type"] == ["users"]:
            users[options["--entity-name"][0]] = options["--add-config"][0]
    return acls, users, calls


def problems_acls(compose: Compose, tmp_path: Path) -> list[str]:
    acls, users, calls = granted_acls(compose, tmp_path)
    expected = expected_acls()
    problems = [f"missing ACL {acl}" for acl in sorted(expected - acls)]
    problems += [f"ACL beyond what the service needs {acl}" for acl in sorted(acls - expected)]
    for service in SUBSCRIPTIONS:
        password = STAND_INS[f"{service.upper()}_KAFKA_PASSWORD"]
        if users.get(service) != f"SCRAM-SHA-512=[iterations=8192,password={password}]":
            problems.append(
                f"{service}: no SCRAM-SHA-512 credential from its variable ({users.get(service)})"
            )
    problems += [
        f"kafka-init sets a credential for {user}, no service"
        for user in set(users) - set(SUBSCRIPTIONS)
    ]
    for tool, *args in calls:
        if base._options(args).get("--command-config") != [
            str(tmp_path / "tools" / "run" / "admin.properties")
        ]:
            problems.append(f"{tool} runs without the admin's SASL_SSL client properties")
    return problems


CHECKS: dict[str, Callable[..., list[str]]] = {
    "service_kafka": problems_service_kafka,
    "service_mongodb": problems_service_mongodb,
    "plaintext": problems_plaintext,
    "passwords": problems_passwords,
    "acls": problems_acls,
}


# ------------------------------------------------------------------------ the tests


def test_every_service_connects_to_kafka_over_sasl_ssl_as_itself(
    compose: Compose, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert problems_service_kafka(compose, monkeypatch) == []


def test_every_mongodb_uri_has_tls_and_the_services_own_credentials(compose: Compose) -> None:
    assert problems_service_mongodb(compose) == []


def test_no_plaintext_listener_and_nothing_published_beyond_loopback(compose: Compose) -> None:
    assert problems_plaintext(compose) == []


def test_no_password_literal_in_the_file(compose: Compose) -> None:
    assert problems_passwords(compose) == []


def test_each_kafka_user_may_do_exactly_what_its_service_needs(
    compose: Compose, tmp_path: Path
) -> None:
    assert problems_acls(compose, tmp_path) == []
    # kafka-init itself talks to the brokers as admin over SASL_SSL, trusting the CA only,
    # with its password in a file only it can read.
    env = environment(compose["services"]["kafka-init"])
    client = tmp_path / "tools" / "run" / "admin.properties"
    assert stat.S_IMODE(client.stat().st_mode) == 0o600
    properties = dict(
        line.split("=", 1) for line in client.read_text(encoding="utf-8").splitlines() if line
    )
    admin_password = STAND_INS["KAFKA_ADMIN_PASSWORD"]
    assert properties == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="{admin_password}";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": env["CA_FILE"],
    }
    assert _ca_volume_file(compose, compose["services"]["kafka-init"], env["CA_FILE"])


def test_the_acl_table_reads_like_the_subscriptions() -> None:
    # A spot check of the derivation itself, against what the services are known to do.
    acls = expected_acls()
    assert ("registration", "topic", "registration.requests", "Read") in acls
    assert ("registration", "topic", "registration.events", "Write") in acls
    assert ("seminar", "topic", "registration.events.dlq", "Write") in acls
    assert ("metrics", "topic", "registration.requests", "Describe") in acls
    assert not any(
        acl[0] == "metrics" and acl[3] == "Write" and not acl[2].endswith(".dlq") for acl in acls
    )


def _break_kafka_protocol(c: Compose) -> None:
    c["x-service-env"]["KAFKA_SECURITY_PROTOCOL"] = "SSL"
    for name in SETTINGS:
        c["services"][name]["environment"]["KAFKA_SECURITY_PROTOCOL"] = "SSL"


def _share_a_kafka_user(c: Compose) -> None:
    c["services"]["metrics"]["environment"]["KAFKA_SASL_USERNAME"] = "registration"


def _drop_tls_from_a_uri(c: Compose) -> None:
    env = c["services"]["feedback"]["environment"]
    env["MONGODB_URI"] = env["MONGODB_URI"].replace("tls=true&", "")


def _widen_a_database_role(c: Compose) -> None:
    init = c["services"]["mongodb-init"]
    init["command"][0] = init["command"][0].replace(
        "role: 'readWrite', db: database", "role: 'readWriteAnyDatabase', db: 'admin'"
    )


def _publish_plaintext(c: Compose) -> None:
    env = c["services"]["kafka-1"]["environment"]
    env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] = env[
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"
    ].replace("EXTERNAL:SASL_SSL", "EXTERNAL:PLAINTEXT")


def _relax_mongodb_tls(c: Compose) -> None:
    command = c["services"]["mongodb"]["command"]
    command[command.index("requireTLS")] = "preferTLS"


def _write_a_password(c: Compose) -> None:
    c["services"]["seminar"]["environment"]["KAFKA_SASL_PASSWORD"] = "hunter2"


def _password_in_a_uri(c: Compose) -> None:
    env = c["services"]["seminar"]["environment"]
    env["MONGODB_URI"] = re.sub(r"seminar:\$\{[^}]+\}@", "seminar:hunter2@", env["MONGODB_URI"])


def _grant_a_foreign_topic(c: Compose) -> None:
    env = c["services"]["kafka-init"]["environment"]
    env["SERVICE_ACLS"] += "metrics topic registration.events Write\n"


def _forget_a_dead_letter_topic(c: Compose) -> None:
    env = c["services"]["kafka-init"]["environment"]
    env["SERVICE_ACLS"] = re.sub(
        r"seminar +topic +registration\.events\.dlq +Write\n", "", env["SERVICE_ACLS"]
    )


@pytest.mark.parametrize(
    ("check", "weaken"),
    [
        ("service_kafka", _break_kafka_protocol),
        ("service_kafka", _share_a_kafka_user),
        ("service_mongodb", _drop_tls_from_a_uri),
        ("service_mongodb", _widen_a_database_role),
        ("plaintext", _publish_plaintext),
        ("plaintext", _relax_mongodb_tls),
        ("passwords", _write_a_password),
        ("passwords", _password_in_a_uri),
        ("acls", _grant_a_foreign_topic),
        ("acls", _forget_a_dead_letter_topic),
    ],
    ids=lambda value: value if isinstance(value, str) else value.__name__.strip("_"),
)
def test_the_checks_catch_a_weakened_file(
    compose: Compose,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    check: str,
    weaken: Callable[[Compose], None],
) -> None:
    weaken(compose)
    function = CHECKS[check]
    if check == "service_kafka":
        problems = function(compose, monkeypatch)
    elif check == "acls":
        problems = function(compose, tmp_path)
    else:
        problems = function(compose)
    assert problems != []


# ------------------------------------------------------------- the broker's start script


def test_the_broker_start_script_renders_sasl_ssl_scram_and_the_authorizer(
    compose: Compose, tmp_path: Path
) -> None:
    broker = compose["services"]["kafka-1"]
    assert broker["entrypoint"] == ["/bin/bash", "/opt/seminar-ops/start-broker.sh"]
    assert (ROOT / _mounts(broker)["/opt/seminar-ops"]).resolve() == START_BROKER.parent
    home = tmp_path / "kafka"
    (home / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    for tool in ("kafka-storage.sh", "kafka-server-start.sh"):
        path = home / "bin" / tool
        path.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n', encoding="utf-8")
        path.chmod(0o755)
    env = {key: interpolate(value).replace("$$", "$") for key, value in environment(broker).items()}
    env |= {
        "KAFKA_HOME": str(home),
        "CONFIG_DIR": str(tmp_path / "run"),
        "PATH": os.environ["PATH"],
    }
    result = subprocess.run(
        ["/bin/bash", str(START_BROKER)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    server = tmp_path / "run" / "server.properties"
    assert stat.S_IMODE(server.stat().st_mode) == 0o600, "it holds the brokers' password"
    properties = dict(
        line.split("=", 1)
        for line in server.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert (
        properties["listener.security.protocol.map"]
        == "CONTROLLER:SSL,INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL"
    )
    assert properties["inter.broker.listener.name"] == "INTERNAL"
    assert properties["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert properties["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert properties["listener.name.controller.ssl.client.auth"] == "required"
    assert (
        properties["authorizer.class.name"]
        == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert properties["ssl.keystore.type"] == "PEM"
    assert properties["ssl.truststore.type"] == "PEM"
    assert properties["node.id"] == "1"
    broker_password = STAND_INS["KAFKA_BROKER_PASSWORD"]
    assert properties["listener.name.internal.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="broker" password="{broker_password}";'
    )
    assert properties["listener.name.external.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    )
    # No variable that is not a property leaked in (the passwords, the cluster id).
    assert not any("password" in key for key in properties if "jaas" not in key)
    assert "cluster.id" not in properties
    # The nodes' certificates name them: the mapping rule turns CN=kafka-1,O=seminar-ops
    # into the super user kafka-1.
    rule = re.fullmatch(r"RULE:(.*)/(.*)/,DEFAULT", properties["ssl.principal.mapping.rules"])
    assert rule
    super_users = set(properties["super.users"].split(";"))
    java_pattern = rule.group(2).replace("$1", r"\1")
    for node in KAFKA_NODES:
        assert (
            f"User:{re.sub(rule.group(1), java_pattern, f'CN={node},O=seminar-ops')}" in super_users
        )
    assert super_users == {"User:broker", "User:admin", *(f"User:{node}" for node in KAFKA_NODES)}

    calls = log.read_text(encoding="utf-8").splitlines()
    assert calls[0].startswith("kafka-storage.sh format --ignore-formatted")
    admin_password = STAND_INS["KAFKA_ADMIN_PASSWORD"]
    assert f"--add-scram SCRAM-SHA-512=[name=broker,password={broker_password}]" in calls[0]
    assert f"--add-scram SCRAM-SHA-512=[name=admin,password={admin_password}]" in calls[0]
    assert calls[1] == f"kafka-server-start.sh {server}"
    # The health check's client properties: SASL_SSL with the CA.
    client = (tmp_path / "run" / "client.properties").read_text(encoding="utf-8")
    assert "security.protocol=SASL_SSL" in client
    assert f"ssl.truststore.location={properties['ssl.truststore.location']}" in client
    assert "/run/seminar-ops-kafka/client.properties" in " ".join(broker["healthcheck"]["test"])


def test_the_broker_start_script_refuses_a_password_that_would_break_its_quoting(
    compose: Compose, tmp_path: Path
) -> None:
    broker = compose["services"]["kafka-2"]
    env = {key: interpolate(value) for key, value in environment(broker).items()}
    env |= {
        "BROKER_SCRAM_PASSWORD": 'a"b',
        "KAFKA_HOME": str(tmp_path),
        "CONFIG_DIR": str(tmp_path / "run"),
        "PATH": os.environ["PATH"],
    }
    result = subprocess.run(
        ["/bin/bash", str(START_BROKER)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "BROKER_SCRAM_PASSWORD may only hold" in result.stderr


# --------------------------------------------------------------- certificates and keys


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls") / "generated"
    result = subprocess.run(
        [str(MAKE_CERTS), str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return directory


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.mark.parametrize("node", [*KAFKA_NODES, "mongodb"])
def test_the_tls_script_issues_certificates_that_verify_with_the_right_names(
    certificates: Path, node: str
) -> None:
    ca = _certificate(certificates / "ca.pem")
    certificate = _certificate(certificates / f"{node}.pem")
    certificate.verify_directly_issued_by(ca)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {node, "localhost"}
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == node
    assert certificate.subject.rfc4514_string() == f"CN={node},O=seminar-ops"
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for private in (f"{node}-key.pem", f"{node}-bundle.pem", "ca-key.pem"):
        assert stat.S_IMODE((certificates / private).stat().st_mode) == 0o600, private
        assert b"-----BEGIN PRIVATE KEY-----" in (certificates / private).read_bytes(), "PKCS#8"


def _handshake(bundle: Path, ca_file: Path, server_hostname: str) -> None:
    """A TLS handshake in memory: a server with ``bundle`` (key and certificate, as Kafka
    and mongod load it), a client that trusts ``ca_file`` and checks ``server_hostname``."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(bundle)
    client_context = ssl.create_default_context(cafile=str(ca_file))
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, to_server, server_hostname=server_hostname)
    server = server_context.wrap_bio(to_server, to_client, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                side.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
        if all(done.values()):
            return
    raise AssertionError("handshake did not complete")


@pytest.mark.parametrize(
    ("node", "host"), [("kafka-1", "kafka-1"), ("kafka-3", "localhost"), ("mongodb", "mongodb")]
)
def test_a_client_trusting_the_ca_completes_a_handshake_under_the_nodes_name(
    certificates: Path, node: str, host: str
) -> None:
    _handshake(certificates / f"{node}-bundle.pem", certificates / "ca.pem", host)


def test_a_certificate_presented_under_another_name_or_another_ca_is_refused(
    certificates: Path, tmp_path: Path
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _handshake(certificates / "kafka-2-bundle.pem", certificates / "ca.pem", "kafka-1")
    other = tmp_path / "other"
    subprocess.run([str(MAKE_CERTS), str(other)], capture_output=True, timeout=120, check=True)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        _handshake(certificates / "kafka-1-bundle.pem", other / "ca.pem", "kafka-1")


def test_the_tls_script_keeps_its_files_and_renews_from_the_same_ca(tmp_path: Path) -> None:
    directory = tmp_path / "generated"
    subprocess.run([str(MAKE_CERTS), str(directory)], capture_output=True, timeout=120, check=True)
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    subprocess.run([str(MAKE_CERTS), str(directory)], capture_output=True, timeout=120, check=True)
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before
    subprocess.run(
        [str(MAKE_CERTS), "--renew", str(directory)], capture_output=True, timeout=120, check=True
    )
    assert (directory / "ca.pem").read_bytes() == before["ca.pem"]
    renewed = _certificate(directory / "kafka-1.pem")
    assert (
        renewed.serial_number != x509.load_pem_x509_certificate(before["kafka-1.pem"]).serial_number
    )
    renewed.verify_directly_issued_by(_certificate(directory / "ca.pem"))


def test_the_secrets_script_draws_every_password_once_and_rotates_one(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    subprocess.run([str(MAKE_SECRETS), str(directory)], capture_output=True, timeout=60, check=True)
    env_file = directory / "compose.env"
    first = dict(line.split("=", 1) for line in env_file.read_text(encoding="utf-8").splitlines())
    assert set(first) == _generated_variables()
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in first.values())
    assert len(set(first.values())) == len(first)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "mongodb-keyfile").stat().st_mode) == 0o600
    subprocess.run(
        [str(MAKE_SECRETS), "--rotate", "SEMINAR_KAFKA_PASSWORD", str(directory)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    second = dict(line.split("=", 1) for line in env_file.read_text(encoding="utf-8").splitlines())
    assert {k for k in first if first[k] != second[k]} == {"SEMINAR_KAFKA_PASSWORD"}


def _run_tls_init(
    compose: Compose, tls: Path, secrets: Path, out: Path
) -> subprocess.CompletedProcess[str]:
    init = compose["services"]["tls-init"]
    script = base.unescape_compose(init["command"][0])
    owner = f"{os.getuid()}:{os.getgid()}"
    env = {
        **environment(init),
        "TLS_DIR": str(tls),
        "SECRETS_DIR": str(secrets),
        "OUT_DIR": str(out),
        "KAFKA_OWNER": owner,
        "MONGODB_OWNER": owner,
        "CA_OWNER": owner,
        "PATH": os.environ["PATH"],
    }
    return subprocess.run(
        [*init["entrypoint"], script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tls_init_gives_each_server_its_own_key_readable_by_it_alone(
    compose: Compose, certificates: Path, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    subprocess.run([str(MAKE_SECRETS), str(secrets)], capture_output=True, timeout=60, check=True)
    out = tmp_path / "out"
    result = _run_tls_init(compose, certificates, secrets, out)
    assert result.returncode == 0, result.stderr

    services = compose["services"]
    for node in KAFKA_NODES:
        volume = _mounts(services[node])["/etc/kafka/tls"]
        target = _mounts(services["tls-init"]).get(f"/out/{node}")
        assert target == volume, f"{node} mounts the volume tls-init fills for it"
        placed = {path.name: path for path in (out / node).iterdir()}
        assert set(placed) == {"keystore.pem", "ca.pem"}, "no other node's key"
        assert (
            placed["keystore.pem"].read_bytes()
            == (certificates / f"{node}-bundle.pem").read_bytes()
        )
        assert stat.S_IMODE(placed["keystore.pem"].stat().st_mode) == 0o400
        env = environment(services[node])
        assert env["KAFKA_SSL_KEYSTORE_LOCATION"] == "/etc/kafka/tls/keystore.pem"
        assert env["KAFKA_SSL_TRUSTSTORE_LOCATION"] == "/etc/kafka/tls/ca.pem"
    mongodb = {path.name: path for path in (out / "mongodb").iterdir()}
    assert set(mongodb) == {"mongodb.pem", "keyfile", "ca.pem"}
    assert all(
        stat.S_IMODE(mongodb[name].stat().st_mode) == 0o400 for name in ("mongodb.pem", "keyfile")
    )
    command = services["mongodb"]["command"]
    for flag, file_name in (
        ("--tlsCertificateKeyFile", "mongodb.pem"),
        ("--tlsCAFile", "ca.pem"),
        ("--keyFile", "keyfile"),
    ):
        assert command[command.index(flag) + 1] == f"/etc/mongodb/tls/{file_name}"
    assert (
        _mounts(services["mongodb"])["/etc/mongodb/tls"]
        == _mounts(services["tls-init"])["/out/mongodb"]
    )
    assert {path.name for path in (out / "ca").iterdir()} == {"ca.pem"}
    assert stat.S_IMODE((out / "ca" / "ca.pem").stat().st_mode) == 0o444


def test_tls_init_stops_with_the_reason_when_nothing_was_generated(
    compose: Compose, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run_tls_init(compose, empty, empty, tmp_path / "out")
    assert result.returncode != 0
    assert "run 'make compose-secrets' first" in result.stderr


# ------------------------------------------------------------------- mongodb-init's script

# mongosh's globals (connect, print, quit, sleep) over a stand-in server, for Node.js:
# the script runs as written in the compose file, its calls are recorded.
_MONGOSH_STAND_IN = r"""
const fs = require('fs');
const state = JSON.parse(process.env.STAND_IN_STATE);
const calls = [];
let now = 0;
let hellos = 0;
class Quit extends Error { constructor(code) { super('quit'); this.code = code; } }
Date.now = () => now;
globalThis.print = (...words) => calls.push(['print', words.join(' ')]);
globalThis.quit = (code) => { throw new Quit(code === undefined ? 0 : code); };
globalThis.sleep = (ms) => { now += ms; };
const admin = {
  adminCommand(command) {
    calls.push(['adminCommand', command]);
    if ('replSetGetStatus' in command && !state.initiated) {
      const error = new Error('no replset config has been received');
      error.codeName = 'NotYetInitialized';
      throw error;
    }
    if ('replSetInitiate' in command) { state.initiated = true; }
    return {ok: 1};
  },
  hello() { hellos += 1; return {ok: 1, isWritablePrimary: state.initiated && hellos > state.primary_after}; },
  getUser(name) { return state.users.includes(name) ? {user: name} : null; },
  createUser(user) { calls.push(['createUser', user]); state.users.push(user.user); },
  updateUser(name, user) { calls.push(['updateUser', name, user]); },
};
globalThis.connect = (uri) => { calls.push(['connect', uri]); return admin; };
let code = 0;
try {
  (0, eval)(fs.readFileSync(process.env.SCRIPT, 'utf8'));
} catch (error) {
  if (error instanceof Quit) { code = error.code; } else { console.error(error.stack); code = 2; }
}
console.log(JSON.stringify({code: code, calls: calls}));
"""


def _run_mongodb_init(
    compose: Compose,
    tmp_path: Path,
    *,
    initiated: bool,
    users: list[str],
    primary_after: int = 2,
    unset: str | None = None,
) -> tuple[int, list[list[Any]]]:
    init = compose["services"]["mongodb-init"]
    assert init["entrypoint"] == ["mongosh", "--nodb", "--quiet", "--eval"]
    script = tmp_path / "mongodb-init.js"
    script.write_text(base.unescape_compose(init["command"][0]), encoding="utf-8")
    harness = tmp_path / "mongosh-stand-in.js"
    harness.write_text(_MONGOSH_STAND_IN, encoding="utf-8")
    env = {key: interpolate(value) for key, value in environment(init).items() if key != unset}
    state = {"initiated": initiated, "users": users, "primary_after": primary_after}
    env |= {"SCRIPT": str(script), "STAND_IN_STATE": json.dumps(state), "PATH": os.environ["PATH"]}
    node = shutil.which("node")
    assert node, "Node.js runs mongosh's scripts here (it is part of this machine kind)"
    result = subprocess.run(
        [node, str(harness)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome["code"], outcome["calls"]


def test_mongodb_init_initiates_once_and_gives_each_service_its_own_database(
    compose: Compose, tmp_path: Path
) -> None:
    code, calls = _run_mongodb_init(compose, tmp_path, initiated=False, users=[])
    assert code == 0, calls
    root_password = STAND_INS["MONGODB_ROOT_PASSWORD"]
    assert calls[0] == [
        "connect",
        f"mongodb://root:{root_password}@mongodb:27017/admin?directConnection=true"
        "&authSource=admin&tls=true&tlsCAFile=%2Fetc%2Fseminar-ops%2Ftls%2Fca.pem",
    ]
    commands = [call[1] for call in calls if call[0] == "adminCommand"]
    assert {
        "replSetInitiate": {"_id": "rs0", "members": [{"_id": 0, "host": "mongodb:27017"}]}
    } in (commands)
    created = {call[1]["user"]: call[1] for call in calls if call[0] == "createUser"}
    assert set(created) == set(SETTINGS)
    for name, user in created.items():
        assert user == {
            "user": name,
            "pwd": STAND_INS[f"{name.upper()}_MONGODB_PASSWORD"],
            "roles": [{"role": "readWrite", "db": name}],
            "mechanisms": ["SCRAM-SHA-256"],
        }
    # Users only once the member is a writable primary.
    first_user = next(i for i, call in enumerate(calls) if call[0] == "createUser")
    initiate = next(i for i, call in enumerate(calls) if "replSetInitiate" in str(call))
    assert initiate < first_user


def test_mongodb_init_run_again_leaves_the_replica_set_and_sets_the_passwords(
    compose: Compose, tmp_path: Path
) -> None:
    code, calls = _run_mongodb_init(compose, tmp_path, initiated=True, users=list(SETTINGS))
    assert code == 0, calls
    assert not any("replSetInitiate" in str(call) for call in calls)
    assert not any(call[0] == "createUser" for call in calls)
    updated = {call[1]: call[2] for call in calls if call[0] == "updateUser"}
    assert set(updated) == set(SETTINGS)
    assert all(
        user["pwd"] == STAND_INS[f"{name.upper()}_MONGODB_PASSWORD"]
        and user["roles"] == [{"role": "readWrite", "db": name}]
        for name, user in updated.items()
    )


def test_mongodb_init_fails_without_a_password_or_a_primary(
    compose: Compose, tmp_path: Path
) -> None:
    code, calls = _run_mongodb_init(
        compose, tmp_path, initiated=True, users=[], unset="FEEDBACK_MONGODB_PASSWORD"
    )
    assert code == 1
    assert ["print", "mongodb-init: FEEDBACK_MONGODB_PASSWORD is not set"] in calls
    code, calls = _run_mongodb_init(
        compose, tmp_path, initiated=False, users=[], primary_after=10**9
    )
    assert code == 1
    assert ["print", "mongodb-init: no writable primary after 120 s"] in calls
    assert not any(call[0] == "createUser" for call in calls)
