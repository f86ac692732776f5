"""A small, strict stand-in for ``kustomize build``, for tests without the binary.

It understands exactly the subset of kustomize that ``deploy/kubernetes`` uses and refuses
everything else (an unknown key in a kustomization is an error, not silently ignored), so
a manifest change that this renderer cannot follow makes the tests fail instead of
passing unchecked:

- ``resources``: YAML files (one or more documents) and directories with a
  ``kustomization.yaml``, rendered recursively;
- ``namespace``: set on every namespaced resource (cluster-scoped kinds keep none);
- ``configMapGenerator`` with ``literals``, ``behavior`` create/merge/replace and
  ``options.disableNameSuffixHash: true`` (the hash suffix itself is not emulated, so a
  generator without that option is refused);
- ``patches`` from ``path`` or inline ``patch``, with an optional ``target`` (group,
  version, kind, name, namespace, equality ``labelSelector``): RFC 6902 JSON patches
  (a YAML list of operations) and strategic-merge patches (a YAML mapping, one document);
  lists of containers, env, volumes and volume mounts merge by key, other lists are
  replaced, as Kubernetes does for lists without a merge strategy;
- ``images``: ``newName`` / ``newTag`` / ``digest`` on every container and init container.

Order as in kustomize: resources and generators, then patches, then namespace, then images.
A patch that matches nothing is an error (kustomize fails the same way for a missing
strategic-merge target).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED_KEYS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "configMapGenerator", "patches", "images"}
)
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ClusterIssuer",
    }
)
# Strategic merge: the key by which list items are matched (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not support, or is wrong."""


@dataclass
class Build:
    """The rendered resources and every file that went into them."""

    resources: list[Resource]
    files: set[Path] = field(default_factory=set)

    def find(self, kind: str, name: str) -> Resource:
        matches = [r for r in self.resources if r["kind"] == kind and r["metadata"]["name"] == name]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} resources {kind}/{name}")
        return matches[0]

    def of_kind(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r["kind"] == kind]


def load_documents(path: Path) -> list[Resource]:
    """The non-empty YAML documents of a file."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def load_kustomization(directory: Path) -> dict[str, Any]:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory} has no kustomization.yaml")
    docs = load_documents(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise KustomizeError(f"{path} must hold exactly one mapping")
    kustomization: dict[str, Any] = docs[0]
    unknown = set(kustomization) - SUPPORTED_KEYS
    if unknown:
        raise KustomizeError(f"{path}: unsupported keys {sorted(unknown)}")
    return kustomization


def render(directory: Path) -> Build:
    """``kustomize build <directory>`` for the supported subset."""
    directory = directory.resolve()
    kustomization = load_kustomization(directory)
    build = Build(resources=[], files={directory / "kustomization.yaml"})

    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            sub = render(target)
            build.resources.extend(sub.resources)
            build.files |= sub.files
        elif target.is_file():
            build.resources.extend(load_documents(target))
            build.files.add(target)
        else:
            raise KustomizeError(f"{directory}: resource {entry} does not exist")

    for generator in kustomization.get("configMapGenerator", []):
        _generate_config_map(build, generator, where=directory)

    for patch in kustomization.get("patches", []):
        _apply_patch(build, patch, where=directory)

    namespace = kustomization.get("namespace")
    if namespace is not None:
        for resource in build.resources:
            if resource["kind"] not in CLUSTER_SCOPED_KINDS:
                resource["metadata"]["namespace"] = namespace

    for image in kustomization.get("images", []):
        _set_image(build.resources, image)

    _check_unique(build.resources, where=directory)
    return build


def _check_unique(resources: list[Resource], *, where: Path) -> None:
    seen: set[tuple[str, str, str, str | None]] = set()
    for resource in resources:
        key = (
            resource["apiVersion"].split("/")[0] if "/" in resource["apiVersion"] else "",
            resource["kind"],
            resource["metadata"]["name"],
            resource["metadata"].get("namespace"),
        )
        if key in seen:
            raise KustomizeError(f"{where}: {key} is declared twice")
        seen.add(key)


# --------------------------------------------------------------------------- generators


def _generate_config_map(build: Build, generator: dict[str, Any], *, where: Path) -> None:
    allowed = {"name", "namespace", "behavior", "literals", "options"}
    if set(generator) - allowed:
        raise KustomizeError(f"{where}: unsupported generator keys {set(generator) - allowed}")
    if not (generator.get("options") or {}).get("disableNameSuffixHash"):
        raise KustomizeError(
            f"{where}: configMapGenerator {generator['name']} needs options.disableNameSuffixHash:"
            " true (the hash suffix is not emulated here)"
        )
    data: dict[str, str] = {}
    for literal in generator.get("literals", []):
        key, sep, value = literal.partition("=")
        if not sep or not key:
            raise KustomizeError(f"{where}: literal {literal!r} is not KEY=VALUE")
        if key in data:
            raise KustomizeError(f"{where}: literal {key} given twice")
        data[key] = value
    behavior = generator.get("behavior", "create")
    existing = [
        r
        for r in build.resources
        if r["kind"] == "ConfigMap" and r["metadata"]["name"] == generator["name"]
    ]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"{where}: ConfigMap {generator['name']} exists; merge or replace")
        build.resources.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    elif behavior in {"merge", "replace"}:
        if len(existing) != 1:
            raise KustomizeError(f"{where}: no ConfigMap {generator['name']} to {behavior}")
        if behavior == "merge":
            existing[0].setdefault("data", {}).update(data)
        else:
            existing[0]["data"] = data
    else:
        raise KustomizeError(f"{where}: unknown behavior {behavior}")


# --------------------------------------------------------------------------- patches


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _labels_match(resource: Resource, selector: str) -> bool:
    labels = resource["metadata"].get("labels") or {}
    for term in selector.split(","):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        else:
            raise KustomizeError(f"label selector {selector!r}: only = and != are supported")
    return True


def _matches(resource: Resource, target: dict[str, Any]) -> bool:
    allowed = {"group", "version", "kind", "name", "namespace", "labelSelector"}
    if set(target) - allowed:
        raise KustomizeError(f"unsupported patch target keys {set(target) - allowed}")
    group, version = _group_version(resource["apiVersion"])
    checks = {
        "group": group,
        "version": version,
        "kind": resource["kind"],
        "name": resource["metadata"]["name"],
        "namespace": resource["metadata"].get("namespace"),
    }
    if any(key in target and target[key] != value for key, value in checks.items()):
        return False
    return "labelSelector" not in target or _labels_match(resource, target["labelSelector"])


def _apply_patch(build: Build, entry: dict[str, Any], *, where: Path) -> None:
    if set(entry) - {"path", "patch", "target"}:
        raise KustomizeError(
            f"{where}: unsupported patch keys {set(entry) - {'path', 'patch', 'target'}}"
        )
    if "path" in entry:
        path = (where / entry["path"]).resolve()
        if not path.is_file():
            raise KustomizeError(f"{where}: patch {entry['path']} does not exist")
        build.files.add(path)
        documents = load_documents(path)
    else:
        documents = [doc for doc in yaml.safe_load_all(entry["patch"]) if doc is not None]
    if len(documents) != 1:
        raise KustomizeError(f"{where}: one patch per entry, please ({entry})")
    patch = documents[0]
    target = entry.get("target")

    if isinstance(patch, list):
        if target is None:
            raise KustomizeError(f"{where}: a JSON 6902 patch needs a target")
        hits = [r for r in build.resources if _matches(r, target)]
        if not hits:
            raise KustomizeError(f"{where}: patch target {target} matches nothing")
        for resource in hits:
            for operation in patch:
                _json6902(resource, operation)
        return

    if not isinstance(patch, dict):
        raise KustomizeError(f"{where}: a patch is a list (JSON 6902) or a mapping (strategic)")
    if target is None:
        group, version = _group_version(patch["apiVersion"])
        target = {"group": group, "version": version, "kind": patch["kind"]}
        target["name"] = patch["metadata"]["name"]
    hits = [r for r in build.resources if _matches(r, target)]
    if not hits:
        raise KustomizeError(f"{where}: strategic-merge patch target {target} matches nothing")
    for resource in hits:
        body = {k: v for k, v in patch.items() if k not in {"apiVersion", "kind", "metadata"}}
        metadata = {k: v for k, v in patch.get("metadata", {}).items() if k != "name"}
        _strategic_merge(resource, body)
        _strategic_merge(resource["metadata"], metadata)


def _strategic_merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _strategic_merge(base[key], value)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(base.get(key), list):
            base[key] = _merge_list(base[key], value, MERGE_KEYS[key])
        else:
            base[key] = copy.deepcopy(value)


def _merge_list(base: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    merged = copy.deepcopy(base)
    for item in patch:
        if "$patch" in item:
            raise KustomizeError("$patch directives are not supported")
        match = next((m for m in merged if m.get(merge_key) == item.get(merge_key)), None)
        if match is None:
            merged.append(copy.deepcopy(item))
        else:
            _strategic_merge(match, item)
    return merged


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer {path!r} must start with /")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _json6902(resource: Resource, operation: dict[str, Any]) -> None:
    op = operation["op"]
    *parents, last = _pointer(operation["path"])
    node: Any = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if op in {"add", "replace"}:
        value = copy.deepcopy(operation["value"])
        if isinstance(node, list):
            if last == "-":
                node.append(value)
            elif op == "add":
                node.insert(int(last), value)
            else:
                node[int(last)] = value
        else:
            if op == "replace" and last not in node:
                raise KustomizeError(f"replace of missing {operation['path']}")
            node[last] = value
    elif op == "remove":
        if isinstance(node, list):
            del node[int(last)]
        else:
            del node[last]
    else:
        raise KustomizeError(f"JSON patch op {op!r} is not supported")


# --------------------------------------------------------------------------- images


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def containers_of(resource: Resource) -> list[dict[str, Any]]:
    """Every container and init container of a workload (Pod, Deployment, Job, CronJob...)."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"containers", "initContainers"} and isinstance(value, list):
                    found.extend(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(resource.get("spec"))
    return found


def _set_image(resources: list[Resource], image: dict[str, Any]) -> None:
    allowed = {"name", "newName", "newTag", "digest"}
    if set(image) - allowed:
        raise KustomizeError(f"unsupported image keys {set(image) - allowed}")
    for resource in resources:
        for container in containers_of(resource):
            name, tag, digest = split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            else:
                tag = str(image["newTag"]) if "newTag" in image else tag
                reference = f"{name}:{tag}" if tag else name
                container["image"] = f"{reference}@{digest}" if digest else reference
