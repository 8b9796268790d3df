"""Each kind of file under deploy/: its parser, and where the files live.

Every parser returns what its file runs and sets (checker.Found): the Dockerfile's ENTRYPOINT
and CMD, compose `entrypoint:`/`command:`, Kubernetes containers' `command:`/`args:`, systemd
`Exec*=` lines, the crontab, shell scripts inside any of them, and the commands shown in
deploy/README.md. A file under deploy/ that no parser knows fails (found_in), so nothing is
skipped by accident; the kinds that run nothing (alert rules, the dashboard, vendored schemas)
are named there one by one, each checked by its own test module.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from tests.unit.deploy.checker import (
    PROGRAM,
    EnvVar,
    Found,
    Invocation,
    argv_invocations,
    interpolate,
    shell_invocations,
)

PROJECT = Path(__file__).resolve().parents[3]
DEPLOY = PROJECT / "deploy"
K8S = DEPLOY / "k8s"
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|TOKEN|KEYS|DATABASE_URL|REDIS_URL|BROKER_URL")


# --- crontab -----------------------------------------------------------------------------------


def crontab_found(text: str, where: str) -> Found:
    found = Found([], [])
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assignment = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=", stripped)
        if assignment:
            found.env.append(EnvVar(f"{where}:{number}", assignment.group(1)))
            continue
        fields = stripped.split(None, 1 if stripped.startswith("@") else 5)
        command = fields[-1]
        runs = shell_invocations(command, f"{where}:{number}")
        if not runs:
            # Every job line is a spotify-sync command; anything else would go unchecked.
            runs = [Invocation(f"{where}:{number}", ["<no spotify-sync command in: " + command + ">"])]
        found.invocations += runs
    return found


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def exec_form(value: str) -> list[str]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return ["/bin/sh", "-c", value]  # shell form
    assert isinstance(parsed, list), value
    return parsed


def env_assignments(value: str) -> list[str]:
    tokens = shlex.split(value)
    if tokens and "=" not in tokens[0]:
        return [tokens[0]]  # ENV NAME value
    return [token.split("=", 1)[0] for token in tokens]


def dockerfile_found(text: str, where: str) -> Found:
    instructions = dockerfile_instructions(text)
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    final = instructions[stages[-1]:] if stages else instructions
    found = Found([], [])
    entrypoint = next((exec_form(v) for k, v in reversed(final) if k == "ENTRYPOINT"), [])
    cmd = next((exec_form(v) for k, v in reversed(final) if k == "CMD"), [])
    found.invocations += argv_invocations(cmd, f"{where}: ENTRYPOINT + CMD", entrypoint)
    # RUN lines build the image (`pip install spotify-sync` is no command): not scanned.
    for keyword, value in instructions:
        if keyword == "ENV":
            found.env += [EnvVar(f"{where}: ENV", name) for name in env_assignments(value)]
    return found


# --- docker compose ----------------------------------------------------------------------------


def compose_argv(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(interpolate(value.replace("$$", "$")))
    return [interpolate(str(v).replace("$$", "$")) for v in value]


def _env_names(environment) -> list[str]:
    if isinstance(environment, dict):
        return list(environment)
    return [item.split("=", 1)[0] for item in environment or []]


def runs_our_image(service: dict) -> bool:
    return "build" in service or PROGRAM in str(service.get("image", "")) or "SPOTIFY_SYNC_IMAGE" in str(
        service.get("image", ""))


def compose_found(document: dict, where: str) -> Found:
    found = Found([], [])
    for name, service in (document.get("services") or {}).items():
        here = f"{where}: services.{name}"
        found.env += [EnvVar(here, var) for var in _env_names(service.get("environment"))]
        if not runs_our_image(service):
            continue
        command = compose_argv(service.get("command"))
        if "entrypoint" in service:
            found.invocations += argv_invocations(compose_argv(service["entrypoint"]) + command, here)
        elif command:
            found.invocations += argv_invocations(command, here, [PROGRAM])
        else:
            found.invocations.append(Invocation(here + " (the image's CMD)", ["worker"]))
    return found


# --- Kubernetes --------------------------------------------------------------------------------


def pod_spec(manifest: dict) -> dict | None:
    kind, spec = manifest.get("kind"), manifest.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return spec["template"]["spec"]
    if kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return spec
    return None


def containers(manifest: dict) -> list[dict]:
    spec = pod_spec(manifest)
    return [] if spec is None else [*spec.get("initContainers", []), *spec.get("containers", [])]


def k8s_found(documents: list[dict], where: str) -> Found:
    found = Found([], [])
    for manifest in documents:
        name = f"{where}: {manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
        if manifest.get("kind") == "ConfigMap":
            found.env += [EnvVar(name, key) for key in manifest.get("data") or {}]
        for container in containers(manifest):
            here = f"{name} container {container['name']}"
            command, args = container.get("command"), container.get("args") or []
            if command is None:
                found.invocations += argv_invocations([str(a) for a in args], here, [PROGRAM])
            else:
                found.invocations += argv_invocations([str(a) for a in [*command, *args]], here)
            found.env += [EnvVar(here, var["name"]) for var in container.get("env") or []]
    return found


# --- systemd -----------------------------------------------------------------------------------


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file, continuation lines joined."""
    section, out = "", []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def systemd_found(text: str, where: str) -> Found:
    found = Found([], [])
    for section, key, value in unit_entries(text):
        if section == "Service" and key.startswith("Exec"):
            argv = shlex.split(value.lstrip("-@:+!"))
            found.invocations += argv_invocations(argv, f"{where}: {key}")
        if key == "Environment":
            found.env += [EnvVar(f"{where}: Environment", item.split("=", 1)[0]) for item in shlex.split(value)]
    return found


def env_file_found(text: str, where: str) -> Found:
    names = [line.split("=", 1)[0].removeprefix("export ").strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    return Found([], [EnvVar(where, name) for name in names])


# --- markdown: the commands deploy/README.md tells an operator to run ------------------------


def markdown_found(text: str, where: str) -> Found:
    found = Found([], [])
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL):
        found.invocations += shell_invocations(block, f"{where} (code block)")
    return found


# --- every file under deploy/ --------------------------------------------------------------------


def rel(path: Path) -> str:
    return str(path.relative_to(PROJECT))


def is_compose(path: Path) -> bool:
    return path.suffix in (".yml", ".yaml") and ("compose" in path.name)


def yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# Folders whose files run no command and set no variable, each with the test module checking them.
RUNS_NOTHING = {
    DEPLOY / "prometheus": "Prometheus alert rules and their unit tests: test_prometheus.py",
    DEPLOY / "grafana": "the Grafana dashboard: test_grafana.py",
    K8S / "schemas": "vendored CRDs the manifests are validated against: test_kubernetes.py",
}


def found_in(path: Path) -> Found:
    """What one file under deploy/ runs and sets; an AssertionError for a kind no parser knows."""
    text = path.read_text()
    if path.suffix != ".md" and any(folder in path.parents for folder in RUNS_NOTHING):
        return Found([], [])
    if path.name == "Dockerfile" or path.name.endswith(".Dockerfile"):
        return dockerfile_found(text, rel(path))
    if is_compose(path):
        return compose_found(yaml.safe_load(text), rel(path))
    if path.suffix in (".yml", ".yaml"):
        return k8s_found(yaml_documents(path), rel(path))
    if path.suffix in (".service", ".timer", ".socket", ".target"):
        return systemd_found(text, rel(path))
    if path.name.endswith((".env", ".env.example")):
        return env_file_found(text, rel(path))
    if path.name == "crontab" or path.suffix == ".crontab":
        return crontab_found(text, rel(path))
    if path.suffix == ".md":
        return markdown_found(text, rel(path))
    raise AssertionError(f"{rel(path)}: no parser knows this kind of deployment file; teach {__name__} one")


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def everything() -> Found:
    total = Found([], [])
    for path in deploy_files():
        found = found_in(path)
        total.invocations += found.invocations
        total.env += found.env
    return total



# --- the files the target modules look into --------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


CONFIG_MAP, SECRET = "spotify-sync-config", "spotify-sync"


def k8s_manifests(include_examples: bool = True) -> list[tuple[Path, dict]]:
    """Every manifest under deploy/k8s/ with its file (the vendored schemas are no manifests)."""
    out = []
    for path in sorted(K8S.rglob("*.y*ml")):
        if K8S / "schemas" in path.parents:
            continue
        if include_examples or "examples" not in path.parts:
            out += [(path, doc) for doc in yaml_documents(path)]
    return out


def manifest(kind: str, name: str | None = None) -> dict:
    matches = [m for _, m in k8s_manifests() if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]
