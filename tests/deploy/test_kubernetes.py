"""The Kubernetes deployment (``deploy/kubernetes``), checked without a cluster or network.

Each environment (the base and every overlay) is rendered by a strict stand-in for
``kustomize build`` (``k8s_kustomize.py`` beside this file) and then:

- every resource is validated against the Kubernetes OpenAPI schemas that the
  ``kubernetes-validate`` package ships (strict: unknown fields are errors), for the oldest
  and the newest Kubernetes version this project targets; custom resources (KEDA, Strimzi,
  Prometheus Operator) against the minimal schemas in ``schemas/``;
- the manifests are checked against the code: probes on the real health endpoints and the
  container port, ports equal to the services' settings, every topic of ``ALL_TOPICS``
  declared with replication 3 and ``min.insync.replicas`` 2, autoscaling on the right
  consumer group with a ceiling equal to the partitions, durable producer settings,
  secrets that must exist, limits, disruption budgets, network policies, Kafka ACLs.

Each check returns its problems as text; ``test_checks_catch_broken_manifests`` breaks a
rendered environment on purpose to show that every check can fail.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from feedback.settings import FeedbackSettings
from metrics.settings import MetricsSettings
from registration.settings import RegistrationSettings
from seminar.settings import SeminarSettings
from seminarops_shared.events.topics import (
    ALL_TOPICS,
    EVENT_TOPICS,
    FEEDBACK_EVENTS,
    OWNERS,
    REGISTRATION_EVENTS,
    REGISTRATION_REQUESTS,
    SEMINAR_EVENTS,
    SUBSCRIPTIONS,
    dead_letter_topic,
)
from seminarops_shared.settings import ServiceSettings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
K8S_DIR = ROOT / "deploy" / "kubernetes"
JOBS_DIR = K8S_DIR / "jobs"
SCHEMA_DIR = HERE / "schemas"
ALERTS_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"


def _load_helper(name: str) -> ModuleType:
    """Import a helper module beside this file (pytest runs with --import-mode=importlib,
    which puts no test folder on sys.path)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


kustomize = _load_helper("k8s_kustomize")
Build = Any  # k8s_kustomize.Build; the module is loaded at run time
Resource = dict[str, Any]

ENVIRONMENTS = {
    "base": K8S_DIR / "base",
    "staging": K8S_DIR / "overlays" / "staging",
    "production": K8S_DIR / "overlays" / "production",
}
OVERLAYS = ("staging", "production")
# The oldest Kubernetes minor the manifests must work on, and the newest the validator knows.
OLDEST_KUBERNETES = "1.30"

KAFKA_CLUSTER = "seminar-ops"
CONFIG_MAP = "seminar-ops-config"
INGRESS_NAMESPACES = {"ingress-nginx", "monitoring"}
DAY_MS = 86_400_000
FOREVER = "-1"
# The internal event topics are the source of truth the metrics rebuild replays from the
# earliest offset (reports span many years): kept forever. Inbound requests carry personal
# data (7 days); dead letters wait for a person (90 days). No topic has a size limit.
RETENTION_MS = {
    "events": FOREVER,
    "dead-letter": str(90 * DAY_MS),
    REGISTRATION_REQUESTS: str(7 * DAY_MS),
}
EGRESS_PORTS = {("TCP", 9092), ("TCP", 9093), ("TCP", 27017), ("UDP", 53), ("TCP", 53)}


@dataclass(frozen=True)
class Service:
    name: str
    settings: type[ServiceSettings]
    consumes: tuple[str, ...]
    owns: str | None

    @property
    def port(self) -> int:
        default = self.settings.model_fields["port"].default
        assert isinstance(default, int)
        return default

    @property
    def env_prefix(self) -> str:
        return str(self.settings.model_config.get("env_prefix", ""))


SERVICES = (
    Service(
        "registration",
        RegistrationSettings,
        (REGISTRATION_REQUESTS, SEMINAR_EVENTS),
        REGISTRATION_EVENTS,
    ),
    Service("seminar", SeminarSettings, (REGISTRATION_EVENTS,), SEMINAR_EVENTS),
    Service("feedback", FeedbackSettings, (SEMINAR_EVENTS, REGISTRATION_EVENTS), FEEDBACK_EVENTS),
    Service(
        "metrics", MetricsSettings, (SEMINAR_EVENTS, REGISTRATION_EVENTS, FEEDBACK_EVENTS), None
    ),
)

CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication-keda-v1alpha1.json",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "kafkatopic-kafka-v1.json",
    ("kafka.strimzi.io/v1", "KafkaUser"): "kafkauser-kafka-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
}


# --------------------------------------------------------------------------- rendering


@cache
def _rendered(environment: str) -> Build:
    return kustomize.render(ENVIRONMENTS[environment])


def rendered(environment: str) -> Build:
    """A private copy of the rendered environment (tests may break it on purpose)."""
    return copy.deepcopy(_rendered(environment))


def _jobs() -> list[Resource]:
    return [
        doc for path in sorted(JOBS_DIR.glob("*.yaml")) for doc in kustomize.load_documents(path)
    ]


@cache
def _schema(filename: str) -> Any:
    return json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))


def _schema_errors(instance: Any, filename: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(_schema(filename))
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def _name(resource: Resource) -> str:
    return f"{resource['kind']}/{resource['metadata'].get('name', resource['metadata'].get('generateName'))}"


def _container(deployment: Resource) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{_name(deployment)}: one container expected"
    container: dict[str, Any] = containers[0]
    return container


def _config_data(build: Build) -> dict[str, str]:
    data: dict[str, str] = build.find("ConfigMap", CONFIG_MAP).get("data", {})
    return data


def effective_env(build: Build, container: dict[str, Any]) -> dict[str, Any]:
    """Name -> plain string value, or the ``valueFrom`` mapping, as the kubelet resolves it
    (``env`` wins over ``envFrom``)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is None:
            continue
        config = build.find("ConfigMap", ref["name"]).get("data", {})
        env.update({source.get("prefix", "") + k: v for k, v in config.items()})
    for entry in container.get("env", []):
        env[entry["name"]] = entry["value"] if "value" in entry else entry.get("valueFrom")
    return env


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if selector.get("matchExpressions"):
        raise AssertionError("matchExpressions are not evaluated here; use matchLabels")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _port_number(container: dict[str, Any], port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            number: int = declared["containerPort"]
            return number
    return None


def _partitions(build: Build) -> dict[str, int]:
    return {t["spec"]["topicName"]: t["spec"]["partitions"] for t in build.of_kind("KafkaTopic")}


# --------------------------------------------------------------------------- checks


def problems_schema(resources: list[Resource], versions: tuple[str, ...]) -> list[str]:
    """Every resource against its schema: built-in kinds against the Kubernetes schemas of
    each version (strict), custom resources against ``schemas/``."""
    import kubernetes_validate  # type: ignore[import-untyped]  # ships no type hints

    problems = []
    for resource in resources:
        crd = CRD_SCHEMAS.get((str(resource.get("apiVersion")), str(resource.get("kind"))))
        if crd is not None:
            problems += [f"{_name(resource)}: {e}" for e in _schema_errors(resource, crd)]
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                problems.append(f"{_name(resource)} (k8s {version}): {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(f"{_name(resource)}: {error.message}")
    return problems


def problems_topics(build: Build) -> list[str]:
    """Every topic the code uses is declared once, replicated 3 times with min ISR 2, kept
    as long as its class says, and belongs to the cluster the services talk to."""
    problems = []
    topics = build.of_kind("KafkaTopic")
    declared = [t["spec"].get("topicName", t["metadata"]["name"]) for t in topics]
    if sorted(declared) != sorted(ALL_TOPICS):
        problems.append(f"declared topics {sorted(declared)} != ALL_TOPICS {sorted(ALL_TOPICS)}")
    for topic in topics:
        name = topic["spec"].get("topicName", topic["metadata"]["name"])
        spec, config = topic["spec"], topic["spec"].get("config", {})
        if spec.get("replicas") != 3:
            problems.append(f"{name}: replicas {spec.get('replicas')} != 3")
        if config.get("min.insync.replicas") != "2":
            problems.append(f"{name}: min.insync.replicas {config.get('min.insync.replicas')!r}")
        if topic["metadata"].get("labels", {}).get("strimzi.io/cluster") != KAFKA_CLUSTER:
            problems.append(f"{name}: not labelled strimzi.io/cluster={KAFKA_CLUSTER}")
        if name == REGISTRATION_REQUESTS:
            retention = RETENTION_MS[REGISTRATION_REQUESTS]
        elif name.endswith(".dlq"):
            retention = RETENTION_MS["dead-letter"]
        else:
            retention = RETENTION_MS["events"]
        if str(config.get("retention.ms")) != retention:
            problems.append(f"{name}: retention.ms {config.get('retention.ms')!r} != {retention}")
        if str(config.get("retention.bytes")) != FOREVER:
            problems.append(f"{name}: retention.bytes {config.get('retention.bytes')!r} != -1")
        if not isinstance(spec.get("partitions"), int) or spec["partitions"] < 1:
            problems.append(f"{name}: partitions {spec.get('partitions')!r}")
    config_partitions = _config_data(build).get("KAFKA_PARTITIONS")
    events = {_partitions(build).get(t) for t in EVENT_TOPICS}
    if {config_partitions} != {str(p) for p in events}:
        problems.append(
            f"KAFKA_PARTITIONS {config_partitions} != event topics' partitions {events}"
        )
    return problems


def problems_workloads(build: Build) -> list[str]:
    """Per service: the Deployment's probes, ports, resources, security and configuration;
    its Service."""
    problems = []
    config = _config_data(build)
    for service in SERVICES:
        deployment = build.find("Deployment", service.name)
        pod = deployment["spec"]["template"]
        container = _container(deployment)
        where = f"Deployment/{service.name}"
        if not _selects(deployment["spec"]["selector"], pod["metadata"].get("labels", {})):
            problems.append(f"{where}: selector does not select its own pods")
        if container.get("command") != ["python", "-m", service.name]:
            problems.append(f"{where}: command {container.get('command')}")
        ports = [p["containerPort"] for p in container.get("ports", [])]
        if ports != [service.port]:
            problems.append(f"{where}: container ports {ports} != [{service.port}]")
        if config.get(f"{service.env_prefix}PORT") != str(service.port):
            problems.append(f"{where}: {service.env_prefix}PORT is not {service.port}")
        if config.get(f"{service.env_prefix}HOST") != "0.0.0.0":
            problems.append(f"{where}: {service.env_prefix}HOST must be 0.0.0.0")
        for probe, path in (
            ("livenessProbe", "/health/live"),
            ("readinessProbe", "/health/ready"),
            ("startupProbe", "/health/live"),
        ):
            get = container.get(probe, {}).get("httpGet")
            if get is None:
                problems.append(f"{where}: no {probe} with httpGet")
                continue
            if get.get("path") != path:
                problems.append(f"{where}: {probe} path {get.get('path')} != {path}")
            if _port_number(container, get.get("port")) != service.port:
                problems.append(f"{where}: {probe} port {get.get('port')} is not {service.port}")
        resources = container.get("resources", {})
        problems += [
            f"{where}: resources.{kind} needs cpu and memory"
            for kind in ("requests", "limits")
            if not {"cpu", "memory"} <= set(resources.get(kind, {}))
        ]
        if pod["spec"].get("enableServiceLinks") is not False:
            problems.append(f"{where}: service links would set {service.env_prefix}PORT=tcp://...")
        if "replicas" in deployment["spec"]:
            problems.append(f"{where}: spec.replicas fights the ScaledObject; leave it out")
        problems += _pod_security(pod["spec"], where)

        svc = build.find("Service", service.name)
        if not _selects(
            {"matchLabels": svc["spec"].get("selector", {})}, pod["metadata"]["labels"]
        ):
            problems.append(f"Service/{service.name}: selector misses the pods")
        svc_ports = svc["spec"].get("ports", [])
        if [p.get("port") for p in svc_ports] != [service.port]:
            problems.append(f"Service/{service.name}: ports {svc_ports}")
        for port in svc_ports:
            if _port_number(container, port.get("targetPort", port.get("port"))) != service.port:
                problems.append(f"Service/{service.name}: targetPort {port.get('targetPort')}")
    return problems


def _pod_security(pod_spec: dict[str, Any], where: str) -> list[str]:
    """The Pod Security Standard "restricted", plus a read-only root file system."""
    problems = []
    pod_context = pod_spec.get("securityContext", {})
    if pod_context.get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod securityContext.runAsNonRoot must be true")
    if pod_context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile RuntimeDefault expected")
    if pod_spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: automountServiceAccountToken must be false")
    for container in pod_spec.get("containers", []):
        context = container.get("securityContext", {})
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem must be true")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: capabilities must drop ALL")
        if context.get("runAsUser") == 0 or context.get("privileged"):
            problems.append(f"{where}: runs privileged or as root")
    allowed_volumes = {"name", "emptyDir", "secret", "configMap", "projected"}
    problems += [
        f"{where}: volume {volume['name']} is of a kind restricted forbids"
        for volume in pod_spec.get("volumes", [])
        if set(volume) - allowed_volumes
    ]
    return problems


def problems_configuration(build: Build, workloads: list[Resource] | None = None) -> list[str]:
    """Durable producers everywhere; secrets from Secrets that must exist; no Secret
    objects (and so no credentials) in the repository."""
    problems = [f"{_name(r)}: Secrets are created outside git" for r in build.of_kind("Secret")]
    targets = workloads if workloads is not None else build.of_kind("Deployment")
    pseudonym_keys: set[tuple[str | None, str | None]] = set()
    for workload in targets:
        for container in kustomize.containers_of(workload):
            env = effective_env(build, container)
            where = f"{_name(workload)}/{container['name']}"
            expected = {
                "KAFKA_ACKS": "all",
                "KAFKA_ENABLE_IDEMPOTENCE": "true",
                "KAFKA_REPLICATION_FACTOR": "3",
            }
            if workload["kind"] == "Deployment":
                # Tokens that parse but are empty stop the service instead of opening it.
                expected["AUTH_REQUIRED"] = "true"
            for key, value in expected.items():
                if env.get(key) != value:
                    problems.append(f"{where}: {key} is {env.get(key)!r}, not {value!r}")
            secrets = ["KAFKA_SASL_PASSWORD"]
            if workload["kind"] == "Deployment":
                secrets += ["MONGODB_URI", "AUTH_TOKENS", "PRIVACY_PSEUDONYM_KEY"]
            else:
                if "MONGODB_URI" in env:
                    secrets.append("MONGODB_URI")
                if container.get("command", [])[:3] == ["python", "-m", "metrics"]:
                    # The metrics rebuild pseudonymises erased people as the services do.
                    secrets.append("PRIVACY_PSEUDONYM_KEY")
            for key in secrets:
                ref = (
                    (env.get(key) or {}).get("secretKeyRef")
                    if isinstance(env.get(key), dict)
                    else None
                )
                if ref is None:
                    problems.append(f"{where}: {key} must come from a secretKeyRef")
                elif ref.get("optional") is not False:
                    problems.append(f"{where}: {key} secretKeyRef needs optional: false")
                elif key == "PRIVACY_PSEUDONYM_KEY":
                    pseudonym_keys.add((ref.get("name"), ref.get("key")))
            for key, value in env.items():
                if isinstance(value, str) and re.search(
                    r"(PASSWORD|TOKEN|SECRET|_URI$|_KEY$)", key
                ):
                    problems.append(f"{where}: {key} is given in clear text")
            security = env.get("KAFKA_SECURITY_PROTOCOL")
            if security not in {"SASL_SSL", "SSL"}:
                problems.append(f"{where}: KAFKA_SECURITY_PROTOCOL {security!r} is not TLS")
    if len(pseudonym_keys) > 1:
        # One person, one pseudonym: every service must read the same key.
        problems.append(f"PRIVACY_PSEUDONYM_KEY comes from several secrets: {pseudonym_keys}")
    return problems


def problems_scaling(build: Build) -> list[str]:
    """Per service one ScaledObject on Kafka lag of its own consumer group, one trigger per
    consumed topic, the ceiling equal to the partitions (KEDA would not use more)."""
    problems = []
    partitions = _partitions(build)
    config = _config_data(build)
    auths = {a["metadata"]["name"]: a for a in build.of_kind("TriggerAuthentication")}
    scaled = build.of_kind("ScaledObject")
    targets = [s["spec"]["scaleTargetRef"]["name"] for s in scaled]
    if sorted(targets) != sorted(s.name for s in SERVICES):
        problems.append(f"ScaledObjects target {sorted(targets)}, one per service expected")
    for service in SERVICES:
        found = [s for s in scaled if s["spec"]["scaleTargetRef"]["name"] == service.name]
        if len(found) != 1:
            continue
        spec = found[0]["spec"]
        where = f"ScaledObject/{found[0]['metadata']['name']}"
        if spec["scaleTargetRef"].get("kind", "Deployment") != "Deployment":
            problems.append(f"{where}: must scale the Deployment")
        triggers = spec.get("triggers", [])
        topics = sorted(t["metadata"].get("topic", "") for t in triggers)
        if topics != sorted(service.consumes):
            problems.append(
                f"{where}: trigger topics {topics} != consumed {sorted(service.consumes)}"
            )
        for trigger in triggers:
            meta = trigger["metadata"]
            if trigger["type"] != "kafka":
                problems.append(f"{where}: trigger type {trigger['type']}")
            if meta.get("consumerGroup") != service.name:
                problems.append(
                    f"{where}: consumerGroup {meta.get('consumerGroup')} != {service.name}"
                )
            if meta.get("bootstrapServers") != config.get("KAFKA_BOOTSTRAP_SERVERS"):
                problems.append(f"{where}: bootstrapServers differ from the services' config")
            if not str(meta.get("lagThreshold", "")).isdigit():
                problems.append(f"{where}: lagThreshold must be a number in a string")
            tls = meta.get("tls") == "enable"
            if tls != (config.get("KAFKA_SECURITY_PROTOCOL") in {"SSL", "SASL_SSL"}):
                problems.append(f"{where}: tls does not match KAFKA_SECURITY_PROTOCOL")
            mechanism = (config.get("KAFKA_SASL_MECHANISM") or "none").lower().replace("-", "_")
            if meta.get("sasl", "none") != mechanism.replace("scram_sha_", "scram_sha"):
                problems.append(f"{where}: sasl {meta.get('sasl')} != {mechanism}")
            auth = auths.get(trigger.get("authenticationRef", {}).get("name"))
            if auth is None:
                problems.append(f"{where}: authenticationRef names no TriggerAuthentication")
            else:
                problems += _trigger_auth_problems(build, auth, service)
        ceiling = min((partitions.get(t, 0) for t in service.consumes), default=0)
        if spec.get("maxReplicaCount") != ceiling:
            problems.append(
                f"{where}: maxReplicaCount {spec.get('maxReplicaCount')} != partitions {ceiling}"
            )
        if not 1 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 0):
            problems.append(f"{where}: minReplicaCount must be within 1..maxReplicaCount")
    return problems


def _trigger_auth_problems(build: Build, auth: Resource, service: Service) -> list[str]:
    where = f"TriggerAuthentication/{auth['metadata']['name']}"
    container = _container(build.find("Deployment", service.name))
    env = effective_env(build, container)
    params = {ref["parameter"]: ref for ref in auth["spec"].get("secretTargetRef", [])}
    params |= {ref["parameter"]: ref for ref in auth["spec"].get("env", [])}
    password_ref = (env.get("KAFKA_SASL_PASSWORD") or {}).get("secretKeyRef", {})
    problems = []
    if (params.get("password", {}).get("name"), params.get("password", {}).get("key")) != (
        password_ref.get("name"),
        password_ref.get("key"),
    ):
        problems.append(f"{where}: password is not the service's Kafka password")
    username = params.get("username", {})
    if (
        username.get("name") != "KAFKA_SASL_USERNAME"
        or username.get("containerName") != service.name
    ):
        problems.append(f"{where}: username must come from the service's KAFKA_SASL_USERNAME")
    if "ca" not in params:
        problems.append(f"{where}: no ca for TLS")
    return problems


def problems_guards(build: Build) -> list[str]:
    """Every Deployment has a PodDisruptionBudget and a NetworkPolicy that let in only its
    HTTP port from the ingress and monitoring namespaces and let out only Kafka, MongoDB
    and DNS."""
    problems = []
    for service in SERVICES:
        deployment = build.find("Deployment", service.name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        pdbs = [
            p
            for p in build.of_kind("PodDisruptionBudget")
            if _selects(p["spec"]["selector"], labels)
        ]
        if len(pdbs) != 1:
            problems.append(f"Deployment/{service.name}: {len(pdbs)} PodDisruptionBudgets")
        elif pdbs[0]["spec"].get("minAvailable") in {"100%", 0}:
            problems.append(
                f"Deployment/{service.name}: a PodDisruptionBudget that blocks or allows all"
            )
        policies = [
            p for p in build.of_kind("NetworkPolicy") if _selects(p["spec"]["podSelector"], labels)
        ]
        if len(policies) != 1:
            problems.append(f"Deployment/{service.name}: {len(policies)} NetworkPolicies")
            continue
        problems += _network_policy_problems(policies[0], service.port)
    return problems


def _network_policy_problems(policy: Resource, port: int | None) -> list[str]:
    spec, where = policy["spec"], _name(policy)
    problems = []
    if sorted(spec.get("policyTypes", [])) != ["Egress", "Ingress"]:
        problems.append(f"{where}: policyTypes must be Ingress and Egress")
    for rule in spec.get("ingress", []):
        ports = {(p.get("protocol", "TCP"), p.get("port")) for p in rule.get("ports", [])}
        if port is None or ports != {("TCP", port)}:
            problems.append(f"{where}: ingress ports {sorted(ports, key=str)} != {port}")
        peers = rule.get("from", [])
        namespaces = set()
        for peer in peers:
            if set(peer) != {"namespaceSelector"}:
                problems.append(f"{where}: ingress peer {peer} is not a namespace")
                continue
            namespaces.add(
                peer["namespaceSelector"].get("matchLabels", {}).get("kubernetes.io/metadata.name")
            )
        if not peers or not namespaces <= INGRESS_NAMESPACES:
            problems.append(f"{where}: ingress from {namespaces or 'anywhere'}")
    egress = {
        (p.get("protocol", "TCP"), p.get("port"))
        for rule in spec.get("egress", [])
        for p in rule.get("ports", [])
    }
    if egress != EGRESS_PORTS:
        problems.append(
            f"{where}: egress ports {sorted(egress, key=str)} != {sorted(EGRESS_PORTS)}"
        )
    if any(not rule.get("ports") for rule in spec.get("egress", [])):
        problems.append(f"{where}: an egress rule without ports allows everything")
    return problems


def _allows(user: Resource, kind: str, name: str, operation: str) -> bool:
    """Kafka's simple authorizer for allow rules (Read, Write, Delete and Alter imply Describe)."""
    implied = {"Describe": {"Describe", "Read", "Write", "Delete", "Alter", "All"}}
    wanted = implied.get(operation, {operation, "All"})
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        if acl.get("type", "allow") != "allow" or resource["type"] != kind:
            continue
        if resource.get("patternType", "literal") == "prefix":
            matches = name.startswith(resource["name"])
        else:
            matches = resource["name"] in {name, "*"}
        if matches and wanted & set(acl["operations"]):
            return True
    return False


def problems_kafka_users(build: Build) -> list[str]:
    """Each service authenticates as its own KafkaUser that can do what the service does
    (consume, produce its events and dead letters, check that every topic exists) and
    cannot write to topics it does not own."""
    problems = []
    users = {u["metadata"]["name"]: u for u in build.of_kind("KafkaUser")}
    for service in SERVICES:
        env = effective_env(build, _container(build.find("Deployment", service.name)))
        username = env.get("KAFKA_SASL_USERNAME")
        user = users.get(username) if isinstance(username, str) else None
        where = f"KafkaUser/{username}"
        if user is None:
            problems.append(f"Deployment/{service.name}: no KafkaUser {username!r}")
            continue
        if user["metadata"].get("labels", {}).get("strimzi.io/cluster") != KAFKA_CLUSTER:
            problems.append(f"{where}: not labelled strimzi.io/cluster={KAFKA_CLUSTER}")
        password = (env.get("KAFKA_SASL_PASSWORD") or {}).get("secretKeyRef", {})
        if (password.get("name"), password.get("key")) != (username, "password"):
            problems.append(
                f"Deployment/{service.name}: password is not Strimzi's Secret {username}"
            )
        if user["spec"]["authentication"]["type"] != "scram-sha-512":
            problems.append(f"{where}: SCRAM-SHA-512 expected (KAFKA_SASL_MECHANISM)")
        needed = [("group", service.name, "Read")]
        needed += [("topic", t, "Read") for t in service.consumes]
        needed += [("topic", dead_letter_topic(t), "Write") for t in service.consumes]
        needed += [("topic", service.owns, "Write")] if service.owns else []
        needed += [("topic", t, "Describe") for t in ALL_TOPICS]
        problems += [
            f"{where}: cannot {op} {kind} {name}"
            for kind, name, op in needed
            if not _allows(user, kind, name, op)
        ]
        writable = {service.owns} | {dead_letter_topic(t) for t in service.consumes}
        problems += [
            f"{where}: may write {topic}, which it does not own"
            for topic in ALL_TOPICS
            if topic not in writable and _allows(user, "topic", topic, "Write")
        ]
        problems += [
            f"{where}: may create or delete {topic}"
            for topic in ALL_TOPICS
            if _allows(user, "topic", topic, "Create") or _allows(user, "topic", topic, "Delete")
        ]
    return problems


def problems_monitoring(build: Build) -> list[str]:
    """The ServiceMonitor scrapes /metrics of every Service under a job named after the
    service (what the alert rules select)."""
    problems = []
    monitors = build.of_kind("ServiceMonitor")
    if len(monitors) != 1:
        return [f"{len(monitors)} ServiceMonitors, one expected"]
    spec = monitors[0]["spec"]
    for service in SERVICES:
        svc = build.find("Service", service.name)
        labels = svc["metadata"].get("labels", {})
        if not _selects(spec["selector"], labels):
            problems.append(f"ServiceMonitor misses Service/{service.name}")
        if labels.get(spec.get("jobLabel", ""), svc["metadata"]["name"]) != service.name:
            problems.append(f"Service/{service.name}: its job label would not be {service.name}")
        port_names = {p.get("name") for p in svc["spec"]["ports"]}
        problems += [
            f"ServiceMonitor endpoint {endpoint} misses Service/{service.name}"
            for endpoint in spec["endpoints"]
            if endpoint.get("port") not in port_names or endpoint.get("path") != "/metrics"
        ]
    return problems


def problems_overlay(build: Build, environment: str) -> list[str]:
    """An overlay deploys into its own namespace, with a pinned image."""
    problems = []
    namespaces = build.of_kind("Namespace")
    names = {n["metadata"]["name"] for n in namespaces}
    for resource in build.resources:
        namespace = resource["metadata"].get("namespace")
        if resource["kind"] != "Namespace" and namespace not in names:
            problems.append(
                f"{_name(resource)}: namespace {namespace!r} is not the overlay's {names}"
            )
    if len(names) != 1:
        problems.append(f"{environment}: {len(names)} Namespaces, one expected")
    for resource in build.of_kind("Deployment"):
        for container in kustomize.containers_of(resource):
            name, tag, digest = kustomize.split_image(container["image"])
            if "/" not in name or (not digest and tag in {None, "latest"}):
                problems.append(f"{_name(resource)}: image {container['image']} is not pinned")
    return problems


# --------------------------------------------------------------------------- tests


def _kustomization_files() -> list[Path]:
    return sorted(K8S_DIR.rglob("kustomization.yaml"))


@pytest.mark.parametrize("path", _kustomization_files(), ids=lambda p: str(p.relative_to(K8S_DIR)))
def test_kustomization_files_match_schema(path: Path) -> None:
    (kustomization,) = kustomize.load_documents(path)
    assert _schema_errors(kustomization, "kustomization-kustomize-v1beta1.json") == []


def test_every_manifest_is_rendered_or_a_job_template() -> None:
    used = set().union(*(_rendered(env).files for env in ENVIRONMENTS))
    manifests = {p.resolve() for p in K8S_DIR.rglob("*.y*ml")}
    jobs = {p.resolve() for p in JOBS_DIR.glob("*.yaml")}
    assert manifests - used - jobs == set(), "manifests that no kustomization renders"
    assert jobs, "the job templates the runbook refers to"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_manifests_match_kubernetes_schemas(environment: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    versions = (OLDEST_KUBERNETES, kubernetes_validate.utils.latest_version())
    assert problems_schema(_rendered(environment).resources, versions) == []


def test_job_templates_match_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    versions = (OLDEST_KUBERNETES, kubernetes_validate.utils.latest_version())
    assert problems_schema(_jobs(), versions) == []


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_topic_is_declared_durable(environment: str) -> None:
    assert problems_topics(_rendered(environment)) == []


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_workloads_probe_real_endpoints_on_the_services_ports(environment: str) -> None:
    assert problems_workloads(_rendered(environment)) == []


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_configuration_is_durable_and_secrets_are_required(environment: str) -> None:
    assert problems_configuration(_rendered(environment)) == []


@pytest.mark.parametrize(
    "uri",
    [
        "mongodb://u:p@mongo-0.mongo:27017/?replicaSet=rs0",
        "mongodb://u:p@mongo-0.mongo:27017/?replicaSet=rs0&w=1",
        "mongodb://u:p@mongo-0.mongo:27017,mongo-1.mongo:27017/?replicaSet=rs0&w=0",
    ],
)
async def test_services_write_with_majority_whatever_the_secret_uri_says(uri: str) -> None:
    """The database URI lives in a Secret the manifests cannot read, so the code holds
    the guarantee: every service (and the metrics rebuild) writes through ``Mongo``,
    which asks for ``w: majority`` even when the URI forgets it or asks for less."""
    from pydantic import SecretStr

    from seminarops_shared.mongo import Mongo
    from seminarops_shared.settings import MongoSettings

    mongo = Mongo(MongoSettings(uri=SecretStr(uri)), "registration")
    try:
        assert mongo.client.write_concern.document.get("w") == "majority"
        assert mongo.db.write_concern.document.get("w") == "majority"
    finally:
        await mongo.close()


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_autoscaling_follows_consumer_lag_up_to_the_partitions(environment: str) -> None:
    assert problems_scaling(_rendered(environment)) == []


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_deployment_has_a_budget_and_a_network_policy(environment: str) -> None:
    assert problems_guards(_rendered(environment)) == []


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_kafka_users_grant_what_each_service_needs_and_no_more(environment: str) -> None:
    assert problems_kafka_users(_rendered(environment)) == []


def test_the_services_table_is_the_codes_subscriptions_and_owners() -> None:
    # The KafkaUser checks above read SERVICES; it must say what the code subscribes to
    # and publishes (the tables the services start from, and docker-compose.yml's ACLs).
    assert {s.name: set(s.consumes) for s in SERVICES} == {
        name: set(topics) for name, topics in SUBSCRIPTIONS.items()
    }
    assert {s.name: s.owns for s in SERVICES if s.owns} == {
        owner: topic for topic, owner in OWNERS.items() if owner in SUBSCRIPTIONS
    }


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_prometheus_scrapes_every_service(environment: str) -> None:
    assert problems_monitoring(_rendered(environment)) == []


@pytest.mark.parametrize("environment", OVERLAYS)
def test_overlays_use_their_namespace_and_a_pinned_image(environment: str) -> None:
    assert problems_overlay(_rendered(environment), environment) == []


def test_production_doubles_partitions_and_ceilings_together() -> None:
    base, production = _rendered("base"), _rendered("production")
    for topic in EVENT_TOPICS:
        assert _partitions(production)[topic] == 2 * _partitions(base)[topic]
    for service in SERVICES:
        assert (
            production.find("ScaledObject", service.name)["spec"]["maxReplicaCount"]
            == 2 * base.find("ScaledObject", service.name)["spec"]["maxReplicaCount"]
        )
    assert production.find("ScaledObject", "registration")["spec"]["minReplicaCount"] >= 3


def test_job_templates_run_the_tools_with_their_own_identities() -> None:
    base = _rendered("base")
    jobs = {job["metadata"]["generateName"]: job for job in _jobs()}
    assert set(jobs) == {"dlq-", "metrics-rebuild-"}
    assert problems_configuration(base, list(jobs.values())) == []
    users = {u["metadata"]["name"]: u for u in base.of_kind("KafkaUser")}
    tools_policy = base.find("NetworkPolicy", "seminar-ops-tools")
    problems = _network_policy_problems(tools_policy, None)
    for generate_name, job in jobs.items():
        pod = job["spec"]["template"]
        problems += _pod_security(pod["spec"], generate_name)
        if not _selects(tools_policy["spec"]["podSelector"], pod["metadata"]["labels"]):
            problems.append(f"{generate_name}: not covered by the tools' NetworkPolicy")
        (container,) = pod["spec"]["containers"]
        if container["image"] != "seminar-ops":
            problems.append(f"{generate_name}: the runbook replaces the image 'seminar-ops'")
        env = effective_env(base, container)
        if env.get("KAFKA_SASL_USERNAME") not in users:
            problems.append(
                f"{generate_name}: Kafka user {env.get('KAFKA_SASL_USERNAME')} is not declared"
            )
    operator = users["seminar-ops-operator"]
    for topic in EVENT_TOPICS:  # re-drive: read the dead letters, write them back
        for kind, name, operation in (
            ("topic", dead_letter_topic(topic), "Read"),
            ("topic", topic, "Write"),
        ):
            if not _allows(operator, kind, name, operation):
                problems.append(f"seminar-ops-operator cannot {operation} {name}")
    for group in ("dlq-redrive", "dlq-redrive.handler_error"):
        if not _allows(operator, "group", group, "Read"):
            problems.append(f"seminar-ops-operator cannot use the group {group}")
    assert jobs["metrics-rebuild-"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python",
        "-m",
        "metrics",
        "rebuild",
    ]
    assert problems == []


def _alert_names() -> list[str]:
    if not ALERTS_FILE.is_file():
        pytest.skip(f"{ALERTS_FILE.relative_to(ROOT)} does not exist yet")
    rules = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    return [
        rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    ]


def test_runbook_explains_every_alert() -> None:
    runbook = RUNBOOK.read_text(encoding="utf-8")
    missing = [
        name for name in _alert_names() if not re.search(rf"^#+ .*`?{name}`?", runbook, re.M)
    ]
    assert missing == [], "alerts without a section in docs/runbook.md"


def test_alerts_select_the_job_names_the_service_monitor_produces() -> None:
    names = _alert_names()
    assert names
    rules = ALERTS_FILE.read_text(encoding="utf-8")
    jobs = re.findall(r'job=~"([^"]+)"', rules)
    assert jobs, "the service-down alert selects jobs by name"
    for pattern in jobs:
        assert {s.name for s in SERVICES} <= set(pattern.split("|"))


# --------------------------------------------------------------------------- the checks can fail


def _deployment(build: Build, name: str = "registration") -> Resource:
    deployment: Resource = build.find("Deployment", name)
    return deployment


def _set_env(build: Build, key: str, value: str) -> None:
    _container(_deployment(build))["env"].append({"name": key, "value": value})


def _drop(build: Build, kind: str, name: str) -> None:
    build.resources.remove(build.find(kind, name))


def _topic(build: Build, name: str) -> Resource:
    topic: Resource = next(t for t in build.of_kind("KafkaTopic") if t["spec"]["topicName"] == name)
    return topic


MUTATIONS: dict[str, tuple[Callable[[Build], Any], Callable[[Build], list[str]]]] = {
    "liveness on a missing path": (
        lambda b: _container(_deployment(b))["livenessProbe"]["httpGet"].update(path="/healthz"),
        problems_workloads,
    ),
    "readiness on another port": (
        lambda b: _container(_deployment(b))["readinessProbe"]["httpGet"].update(port=9000),
        problems_workloads,
    ),
    "container port differs from settings": (
        lambda b: _container(_deployment(b, "seminar"))["ports"][0].update(containerPort=8080),
        problems_workloads,
    ),
    "service targets a port the pod lacks": (
        lambda b: b.find("Service", "feedback")["spec"]["ports"][0].update(targetPort="web"),
        problems_workloads,
    ),
    "no memory limit": (
        lambda b: _container(_deployment(b, "metrics"))["resources"]["limits"].pop("memory"),
        problems_workloads,
    ),
    "service links on": (
        lambda b: _deployment(b, "feedback")["spec"]["template"]["spec"].pop("enableServiceLinks"),
        problems_workloads,
    ),
    "writable root file system": (
        lambda b: _container(_deployment(b))["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
        problems_workloads,
    ),
    "a topic missing": (lambda b: b.resources.remove(_topic(b, FEEDBACK_EVENTS)), problems_topics),
    "replication 2": (
        lambda b: _topic(b, SEMINAR_EVENTS)["spec"].update(replicas=2),
        problems_topics,
    ),
    "min ISR as a number": (
        lambda b: _topic(b, SEMINAR_EVENTS)["spec"]["config"].update({"min.insync.replicas": 2}),
        problems_topics,
    ),
    "dead letters kept 7 days": (
        lambda b: _topic(b, "seminar.events.dlq")["spec"]["config"].update(
            {"retention.ms": "604800000"}
        ),
        problems_topics,
    ),
    "event topic kept 30 days": (
        lambda b: _topic(b, REGISTRATION_EVENTS)["spec"]["config"].update(
            {"retention.ms": "2592000000"}
        ),
        problems_topics,
    ),
    "inbound requests kept forever": (
        lambda b: _topic(b, REGISTRATION_REQUESTS)["spec"]["config"].update({"retention.ms": "-1"}),
        problems_topics,
    ),
    "event topic with a size limit": (
        lambda b: _topic(b, FEEDBACK_EVENTS)["spec"]["config"].update(
            {"retention.bytes": "107374182400"}
        ),
        problems_topics,
    ),
    "acks=1": (lambda b: _set_env(b, "KAFKA_ACKS", "1"), problems_configuration),
    "no idempotence": (
        lambda b: _set_env(b, "KAFKA_ENABLE_IDEMPOTENCE", "false"),
        problems_configuration,
    ),
    "database URI in clear": (
        lambda b: _set_env(b, "MONGODB_URI", "mongodb://u:p@db/?replicaSet=rs0"),
        problems_configuration,
    ),
    "optional auth tokens": (
        lambda b: next(e for e in _container(_deployment(b))["env"] if e["name"] == "AUTH_TOKENS")[
            "valueFrom"
        ]["secretKeyRef"].update(optional=True),
        problems_configuration,
    ),
    "auth not required": (
        lambda b: _set_env(b, "AUTH_REQUIRED", "false"),
        problems_configuration,
    ),
    "no pseudonym key": (
        lambda b: _container(_deployment(b, "feedback")).update(
            env=[
                e
                for e in _container(_deployment(b, "feedback"))["env"]
                if e["name"] != "PRIVACY_PSEUDONYM_KEY"
            ]
        ),
        problems_configuration,
    ),
    "a pseudonym key of its own": (
        lambda b: next(
            e
            for e in _container(_deployment(b, "metrics"))["env"]
            if e["name"] == "PRIVACY_PSEUDONYM_KEY"
        )["valueFrom"]["secretKeyRef"].update(name="metrics-privacy"),
        problems_configuration,
    ),
    "pseudonym key in clear": (
        lambda b: _set_env(b, "PRIVACY_PSEUDONYM_KEY", "0123456789abcdef0123"),
        problems_configuration,
    ),
    "a committed Secret": (
        lambda b: b.resources.append(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "seminar-ops-auth"}}
        ),
        problems_configuration,
    ),
    "ceiling above the partitions": (
        lambda b: b.find("ScaledObject", "seminar")["spec"].update(maxReplicaCount=24),
        problems_scaling,
    ),
    "partitions raised without the ceiling": (
        lambda b: _topic(b, REGISTRATION_EVENTS)["spec"].update(partitions=24),
        problems_scaling,
    ),
    "lag of another group": (
        lambda b: b.find("ScaledObject", "metrics")["spec"]["triggers"][0]["metadata"].update(
            consumerGroup="feedback"
        ),
        problems_scaling,
    ),
    "a consumed topic without a trigger": (
        lambda b: b.find("ScaledObject", "registration")["spec"]["triggers"].pop(),
        problems_scaling,
    ),
    "no disruption budget": (lambda b: _drop(b, "PodDisruptionBudget", "seminar"), problems_guards),
    "no network policy": (lambda b: _drop(b, "NetworkPolicy", "feedback"), problems_guards),
    "ingress from everywhere": (
        lambda b: b.find("NetworkPolicy", "metrics")["spec"]["ingress"][0].pop("from"),
        problems_guards,
    ),
    "egress without DNS": (
        lambda b: b.find("NetworkPolicy", "registration")["spec"]["egress"].pop(),
        problems_guards,
    ),
    "service may write a topic it does not own": (
        lambda b: b.find("KafkaUser", "seminar-ops-metrics")["spec"]["authorization"][
            "acls"
        ].append(
            {"resource": {"type": "topic", "name": "seminar.events"}, "operations": ["Write"]}
        ),
        problems_kafka_users,
    ),
    "service cannot read what it consumes": (
        lambda b: b.find("KafkaUser", "seminar-ops-seminar")["spec"]["authorization"]["acls"].pop(
            1
        ),
        problems_kafka_users,
    ),
    "service monitor on another port": (
        lambda b: b.find("ServiceMonitor", "seminar-ops")["spec"]["endpoints"][0].update(
            port="metrics"
        ),
        problems_monitoring,
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_checks_catch_broken_manifests(mutation: str) -> None:
    breaks, check = MUTATIONS[mutation]
    build = rendered("production")
    assert check(build) == []
    breaks(build)
    assert check(build) != []


def test_checks_catch_an_unpinned_image_and_a_stray_namespace() -> None:
    build = rendered("staging")
    _container(_deployment(build))["image"] = "registry.example.com/seminar-ops:latest"
    build.find("Service", "seminar")["metadata"]["namespace"] = "default"
    assert len(problems_overlay(build, "staging")) == 2


@pytest.mark.parametrize("environment", ["base"])
def test_schema_check_catches_a_typo(environment: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    versions = (kubernetes_validate.utils.latest_version(),)
    build = rendered(environment)
    _container(_deployment(build))["livenessProbe"]["httpget"] = {"path": "/health/live"}
    build.find("ScaledObject", "seminar")["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 500
    build.find("KafkaTopic", SEMINAR_EVENTS)["spec"]["partition"] = 6
    problems = problems_schema(build.resources, versions)
    assert len(problems) == 3, problems


# --------------------------------------------------------------------------- the renderer


def _write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {tier: front}}
spec:
  template:
    spec:
      containers:
        - name: web
          image: app
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
"""


def test_renderer_applies_overlays_like_kustomize(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "base/kustomization.yaml": "resources: [web.yaml]\nconfigMapGenerator:\n"
            "  - {name: cfg, literals: [X=1], options: {disableNameSuffixHash: true}}\n",
            "base/web.yaml": DEPLOYMENT,
            "overlay/kustomization.yaml": """
namespace: prod
resources: [../base]
images: [{name: app, newName: reg.example/app, newTag: "2.0"}]
configMapGenerator:
  - {name: cfg, behavior: merge, literals: [Y=2], options: {disableNameSuffixHash: true}}
patches:
  - path: env.yaml
  - target: {kind: Deployment, labelSelector: tier=front}
    patch: |-
      - {op: add, path: /spec/replicas, value: 3}
""",
            "overlay/env.yaml": """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - name: web
          env: [{name: B, value: "20"}, {name: C, value: "3"}]
""",
        },
    )
    build = kustomize.render(root / "overlay")
    web = build.find("Deployment", "web")
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]
    assert container["image"] == "reg.example/app:2.0"
    assert web["spec"]["replicas"] == 3
    assert web["metadata"]["namespace"] == "prod"
    assert build.find("ConfigMap", "cfg")["data"] == {"X": "1", "Y": "2"}
    assert root / "overlay" / "env.yaml" in build.files


@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        ("resources: [web.yaml]\ncommonLabels: {a: b}\n", "unsupported keys"),
        ("resources: [missing.yaml]\n", "does not exist"),
        (
            "resources: [web.yaml]\npatches:\n  - target: {kind: Service}\n"
            "    patch: '[{op: remove, path: /spec}]'\n",
            "matches nothing",
        ),
        (
            "resources: [web.yaml]\nconfigMapGenerator: [{name: c, literals: [A=1]}]\n",
            "disableNameSuffixHash",
        ),
    ],
)
def test_renderer_refuses_what_it_does_not_understand(
    tmp_path: Path, kustomization: str, message: str
) -> None:
    _write(tmp_path, {"kustomization.yaml": kustomization, "web.yaml": DEPLOYMENT})
    with pytest.raises(kustomize.KustomizeError, match=message):
        kustomize.render(tmp_path)


def _iter_yaml_files() -> Iterator[Path]:
    yield from sorted(K8S_DIR.rglob("*.yaml"))


def test_no_credentials_in_the_manifests() -> None:
    """No Secret objects, no secretGenerator, nothing that looks like a token or a
    password in any manifest."""
    suspicious = re.compile(r"(password|token|secret)\s*[:=]\s*['\"]?[A-Za-z0-9+/_-]{12,}", re.I)
    for path in _iter_yaml_files():
        text = path.read_text(encoding="utf-8")
        assert "secretGenerator" not in text, path
        assert "kind: Secret\n" not in text, path
        assert not suspicious.search(text), path
