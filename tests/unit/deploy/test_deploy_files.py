"""Every deployment file runs only `spotify-sync` commands that exist, with options they take,
and sets only environment variables the settings read.

The files are parsed, never run (no Docker engine, no cluster here): the Dockerfile's ENTRYPOINT
and CMD, compose `entrypoint:`/`command:`, Kubernetes containers' `command:`/`args:`, systemd
`Exec*=` lines, the crontab, shell scripts inside any of them, and the commands shown in
deploy/README.md. Each `spotify-sync ...` found is parsed by the real click command tree
(`cli.main`), so a renamed command, a removed option or a value of the wrong type fails here.
A file under deploy/ that no parser knows fails too, so nothing is skipped by accident.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import yaml

from cli import main as cli_main
from shared.keys import RedisKeys
from shared.settings import Settings, known_env_vars

PROJECT = Path(__file__).resolve().parents[3]
DEPLOY = PROJECT / "deploy"
PROGRAM = "spotify-sync"

# Variables deployment files may set that the settings do not read, each with its reason.
OTHER_ENV_VARS = {
    "dramatiq_prom_port": "Dramatiq's Prometheus exporter: the metrics port",
    "dramatiq_prom_host": "Dramatiq's Prometheus exporter: the address it listens on",
    "dramatiq_prom_db": "Dramatiq's Prometheus exporter: where its multiprocess files live",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client's multiprocess directory",
    "PYTHONUNBUFFERED": "the image's Python: log lines leave at once",
    "PYTHONDONTWRITEBYTECODE": "the image's Python: no .pyc on a read-only filesystem",
    "PIP_NO_CACHE_DIR": "the image build's pip",
    "PIP_DISABLE_PIP_VERSION_CHECK": "the image build's pip",
    "SHELL": "crontab: the shell cron runs lines with",
    "PATH": "crontab: where cron finds spotify-sync",
    "MAILTO": "crontab: where cron mails output",
    "CRON_TZ": "crontab: the schedule's time zone",
}
OTHER_ENV_PREFIXES = {"POSTGRES_": "the postgres image's own variables (compose)"}
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|TOKEN|KEYS|DATABASE_URL|REDIS_URL|BROKER_URL")


# --- the checker -----------------------------------------------------------------------------


@dataclass
class Invocation:
    where: str
    argv: list[str]  # after the program name

    def __str__(self) -> str:
        return f"{self.where}: {PROGRAM} {shlex.join(self.argv)}"


@dataclass
class EnvVar:
    where: str
    name: str


@dataclass
class Found:
    invocations: list[Invocation]
    env: list[EnvVar]


# click >= 8.2 raises NoArgsIsHelpError; older ones print the help and exit.
_NO_ARGS_IS_HELP = (getattr(click.exceptions, "NoArgsIsHelpError", click.exceptions.Exit), click.exceptions.Exit)


def command_problem(root: click.Command, argv: list[str]) -> str | None:
    """Why `spotify-sync <argv>` would not parse (None when it would). Click's own parser reads
    each level: a group's options, then its subcommand (which must exist), down to the command,
    whose options, values (types included) and arguments must all parse."""
    command, path, rest, parent = root, [PROGRAM], list(argv), None
    if any(arg in ("-h", "--help") for arg in rest):
        return None
    while True:
        try:
            ctx = command.make_context(path[-1], rest, parent=parent)
        except _NO_ARGS_IS_HELP:  # a group without arguments answers with its help
            return f"`{' '.join(path)}` needs a subcommand"
        except click.ClickException as exc:
            return f"`{' '.join(path)}`: {exc.format_message()}"
        if not isinstance(command, click.Group):
            return None
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            return None if command.invoke_without_command else f"`{' '.join(path)}` needs a subcommand"
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        if sub is None:
            return f"`{' '.join(path)}` has no command {name!r}"
        command, path, parent = sub, [*path, name], ctx


def env_problem(name: str) -> str | None:
    if name in known_env_vars() or name in OTHER_ENV_VARS:
        return None
    if any(name.startswith(prefix) for prefix in OTHER_ENV_PREFIXES):
        return None
    return f"{name} is read by no setting (shared/settings.py) and is not in OTHER_ENV_VARS"


def problems(found: Found, root: click.Command = cli_main) -> list[str]:
    out = [f"{inv}: {why}" for inv in found.invocations if (why := command_problem(root, inv.argv))]
    out += [f"{var.where}: {why}" for var in found.env if (why := env_problem(var.name))]
    return out


# --- shell: crontab lines, `sh -c` scripts, README commands ------------------------------------

_INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str) -> str:
    """Compose-style `${VAR:-default}` -> default (`${VAR}` / `${VAR:?msg}` -> VAR): the value
    the files fall back on is the one the checker parses."""
    def value(match: re.Match) -> str:
        name, operator, default = match.groups()
        return default if operator in ("-", ":-") else name
    return _INTERPOLATION.sub(value, text)


def _is_program(token: str) -> bool:
    return token.rsplit("/", 1)[-1] == PROGRAM


# Commands that run another command: how many positional arguments they take before it, and
# which of their options take a value. `flock -n /tmp/lock spotify-sync ...` runs spotify-sync;
# `docker build -t spotify-sync .` or `useradd spotify-sync` do not.
WRAPPERS = {"sudo": 0, "env": 0, "exec": 0, "nice": 0, "nohup": 0, "time": 0, "flock": 1, "timeout": 1,
            "chronic": 0, "setpriv": 0, "runuser": 0}
WRAPPER_VALUE_OPTIONS = {"-u", "-g", "-w", "-E", "-n", "--user", "--group", "-s", "-k", "--signal"}
SHELLS = {"sh", "bash", "ash", "dash"}
SHELL_KEYWORDS = {"do", "then", "else", "elif", "if", "while", "until", "!", "{"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def statement_invocation(tokens: list[str], where: str) -> list[Invocation]:
    """What one shell statement runs, if it runs spotify-sync (in command position)."""
    while tokens and (_ASSIGNMENT.match(tokens[0]) or tokens[0] in SHELL_KEYWORDS):
        tokens = tokens[1:]
    if not tokens:
        return []
    head = tokens[0].rsplit("/", 1)[-1]
    if _is_program(head):
        return [Invocation(where, tokens[1:])]
    if head in SHELLS and len(tokens) >= 3 and tokens[1].startswith("-") and "c" in tokens[1]:
        return shell_invocations(tokens[2], where)
    if head in WRAPPERS:
        rest, positional = tokens[1:], WRAPPERS[head]
        while rest and (rest[0].startswith("-") or _ASSIGNMENT.match(rest[0])):
            option = rest.pop(0)
            if option in WRAPPER_VALUE_OPTIONS and head != "flock" and rest:
                rest.pop(0)
        rest = rest[positional:]
        return statement_invocation(rest, where)
    return []


FD_BEFORE_REDIRECTION = re.compile(r"(?<![\w-])\d+(?=[<>])")


def shell_invocations(script: str, where: str) -> list[Invocation]:
    """Every `spotify-sync ...` a shell script runs, statement by statement (split at newlines,
    ; && || | & and parentheses; redirections end the arguments)."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        # A file descriptor belongs to its redirection only when written against it (2>&1):
        # drop those first, so that `--limit 5000 > /dev/null` keeps its 5000.
        line = FD_BEFORE_REDIRECTION.sub("", line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # unbalanced quotes: let the line stand as words
            tokens = line.split()
        statement: list[str] = []
        redirected = False
        for token in [*tokens, ";"]:
            if token and set(token) <= set(";&|()"):
                found += statement_invocation(statement, where)
                statement, redirected = [], False
            elif token and set(token) <= set("<>&"):
                redirected = True
            elif redirected:
                redirected = False  # the redirection's target
            else:
                statement.append(token)
    return found


def _shell_script(argv: list[str]) -> str | None:
    """The script of `sh -c '...'` / `bash -lc '...'` (None for anything else)."""
    if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash", "dash") and argv[1].startswith("-") \
            and "c" in argv[1]:
        return argv[2]
    return None


def argv_invocations(argv: list[str], where: str, image_entrypoint: list[str] | None = None) -> list[Invocation]:
    """What an exec-form command line runs: the program itself, or a shell script."""
    argv = [*(image_entrypoint or []), *argv]
    if not argv:
        return []
    if _is_program(argv[0]):
        return [Invocation(where, argv[1:])]
    script = _shell_script(argv)
    if script is not None:
        return shell_invocations(script, where)
    return shell_invocations(shlex.join(argv), where)


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


def _exec_form(value: str) -> list[str]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return ["/bin/sh", "-c", value]  # shell form
    assert isinstance(parsed, list), value
    return parsed


def _env_assignments(value: str) -> list[str]:
    tokens = shlex.split(value)
    if tokens and "=" not in tokens[0]:
        return [tokens[0]]  # ENV NAME value
    return [token.split("=", 1)[0] for token in tokens]


def dockerfile_found(text: str, where: str) -> Found:
    instructions = dockerfile_instructions(text)
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    final = instructions[stages[-1]:] if stages else instructions
    found = Found([], [])
    entrypoint = next((_exec_form(v) for k, v in reversed(final) if k == "ENTRYPOINT"), [])
    cmd = next((_exec_form(v) for k, v in reversed(final) if k == "CMD"), [])
    found.invocations += argv_invocations(cmd, f"{where}: ENTRYPOINT + CMD", entrypoint)
    # RUN lines build the image (`pip install spotify-sync` is no command): not scanned.
    for keyword, value in instructions:
        if keyword == "ENV":
            found.env += [EnvVar(f"{where}: ENV", name) for name in _env_assignments(value)]
    return found


# --- docker compose ----------------------------------------------------------------------------


def _compose_argv(value) -> list[str]:
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
        command = _compose_argv(service.get("command"))
        if "entrypoint" in service:
            found.invocations += argv_invocations(_compose_argv(service["entrypoint"]) + command, here)
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
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        found.invocations += shell_invocations(block, f"{where} (code block)")
    return found


# --- every file under deploy/ --------------------------------------------------------------------


def rel(path: Path) -> str:
    return str(path.relative_to(PROJECT))


def is_compose(path: Path) -> bool:
    return path.suffix in (".yml", ".yaml") and ("compose" in path.name)


def yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def found_in(path: Path) -> Found:
    text = path.read_text()
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


# --- the checker can fail ----------------------------------------------------------------------


def test_the_checker_catches_a_bad_command_a_bad_option_and_an_unknown_variable():
    crontab = (
        "SHELL=/bin/sh\n"
        "SPOTIFY_RATELIMIT=100/60s\n"                                       # a typo of SPOTIFY_RATE_LIMIT
        "*/5 * * * * /opt/venv/bin/spotify-sync db upgrad >> /var/log/x 2>&1\n"   # no such command
        "0 * * * * spotify-sync db upgrade --fast\n"                        # no such option
        "@hourly cd /opt && spotify-sync keys rotate --batch-size lots\n"  # a value of the wrong type
        "@daily spotify-sync db\n"                                         # a group, not a command
        "@daily python -m something-else\n"                                # not checked: not allowed
    )
    found = problems(crontab_found(crontab, "crontab"))
    assert [p.split(":", 2)[1] for p in found] == ["3", "4", "5", "6", "7", "2"], found
    assert "no command 'upgrad'" in found[0]
    assert "--fast" in found[1]
    assert "lots" in found[2]
    assert "needs a subcommand" in found[3]
    assert "SPOTIFY_RATELIMIT" in found[5]


def test_redirections_keep_a_numeric_last_argument_and_drop_file_descriptors():
    line = "spotify-sync keys rotate --batch-size 5000 > /dev/null 2>&1; spotify-sync db current 2>/dev/null"
    assert [i.argv for i in shell_invocations(line, "x")] == [["keys", "rotate", "--batch-size", "5000"],
                                                              ["db", "current"]]


def test_the_checker_passes_good_lines_in_every_format():
    crontab = "PATH=/usr/bin\n*/5 * * * * flock -n /tmp/l spotify-sync db upgrade head && spotify-sync keys generate\n"
    assert problems(crontab_found(crontab, "crontab")) == []
    assert len(crontab_found(crontab, "crontab").invocations) == 2

    dockerfile = 'FROM python:3.11-slim AS b\nENV LOG_LEVEL=INFO\nFROM python:3.11-slim\nENTRYPOINT ["spotify-sync"]\nCMD ["db", "current"]\n'
    assert [i.argv for i in dockerfile_found(dockerfile, "Dockerfile").invocations] == [["db", "current"]]
    assert problems(dockerfile_found(dockerfile, "Dockerfile")) == []

    unit = "[Service]\nEnvironment=LOG_LEVEL=debug dramatiq_prom_port=9192\nExecStart=/opt/v/bin/spotify-sync keys rotate --batch-size 10\n"
    assert problems(systemd_found(unit, "unit")) == []
    bad_unit = unit.replace("--batch-size 10", "--batch 10").replace("LOG_LEVEL", "LOGLEVEL")
    assert len(problems(systemd_found(bad_unit, "unit"))) == 2

    compose = {"services": {
        "app": {"build": ".", "command": ["db", "upgrade", "${REV:-head}"], "environment": {"REDIS_URL": "x"}},
        "sh": {"image": "spotify-sync", "entrypoint": ["/bin/sh", "-c"],
               "command": ["while true; do spotify-sync db currnt || true; sleep 60; done"]},
        "pg": {"image": "postgres:16", "environment": ["POSTGRES_DB=music", "PGDATA_TYPO=1"]},
    }}
    assert sorted(p.split(": ", 1)[1].split(":")[0] for p in problems(compose_found(compose, "compose"))) == [
        "services.pg", "services.sh"]

    pod = {"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "a", "args": ["db", "upgrade"]},
                       {"name": "b", "command": ["spotify-sync", "db"], "args": ["stamp"]},
                       {"name": "c", "command": ["sh", "-c", "spotify-sync keys generate; spotify-sync nope"],
                        "env": [{"name": "TRACK_TTL", "value": "1h"}, {"name": "TRACKTTL", "value": "1h"}]}]}}}}}}
    found = problems(k8s_found([pod], "k8s"))
    assert len(found) == 3 and "stamp" in found[0] and "nope" in found[1] and "TRACKTTL" in found[2], found


def test_every_file_under_deploy_has_a_parser():
    assert deploy_files(), "deploy/ is empty"
    for path in deploy_files():
        found_in(path)


# --- the real files ----------------------------------------------------------------------------


def test_every_spotify_sync_command_in_the_deployment_files_exists_with_its_options():
    found = everything()
    assert len(found.invocations) >= 10, [str(i) for i in found.invocations]
    assert [p for p in problems(Found(found.invocations, []))] == []


def test_every_environment_variable_set_is_one_the_settings_read():
    found = everything()
    assert found.env
    assert [p for p in problems(Found([], found.env))] == []


def test_the_deployment_files_run_each_part_of_the_system():
    ran = [" ".join(i.argv) for i in everything().invocations]
    for command in ("worker --processes", "db upgrade", "jobs reconcile", "enqueue popularity-update --older-than",
                    "emulator --host"):
        assert any(r.startswith(command) for r in ran), (command, ran)


# --- Dockerfile --------------------------------------------------------------------------------


def test_the_image_is_small_non_root_and_carries_no_secret():
    instructions = dockerfile_instructions((DEPLOY / "Dockerfile").read_text())
    froms = [v for k, v in instructions if k == "FROM"]
    assert len(froms) >= 2 and all(v.startswith("python:3.11-slim") for v in froms), froms  # multi-stage
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM"):]
    users = [v for k, v in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    assert _exec_form(next(v for k, v in final if k == "ENTRYPOINT")) == [PROGRAM]
    assert _exec_form(next(v for k, v in final if k == "CMD")) == ["worker"]
    for keyword, value in instructions:
        if keyword in ("ENV", "ARG"):
            names = _env_assignments(value) if keyword == "ENV" else [value.split("=", 1)[0]]
            assert not [n for n in names if SECRET_NAMES.search(n)], f"{keyword} {value}: a secret baked in"
        if keyword in ("COPY", "ADD"):
            assert ".env" not in value and "secret" not in value.lower(), value
    assert "EXPOSE" in {k for k, _ in final}


def test_the_build_context_leaves_out_local_state_and_credentials():
    ignored = {line.strip() for line in (PROJECT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".spotify-sync", ".env"} <= ignored
    assert "tests/" in ignored or "tests" in ignored


# --- compose -----------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_migrates_once_before_any_worker_or_cron_starts():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "worker", "cron"} <= set(services)
    assert _compose_argv(services["migrate"]["command"]) == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("worker", "cron"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_scales_workers_exposes_metrics_and_keeps_the_emulator_optional():
    services = compose()["services"]
    worker = services["worker"]
    assert "replicas" in worker["deploy"] and "ports" not in worker  # host ports would clash at --scale
    assert "9191" in [str(p) for p in worker["expose"]]
    assert services["emulator"]["profiles"] == ["emulator"]
    assert all("profiles" not in s for n, s in services.items() if n != "emulator")


def test_compose_cron_runs_the_reconciler_and_the_popularity_refresh():
    runs = [" ".join(i.argv) for i in compose_found(compose(), "compose").invocations if "cron" in i.where]
    assert any(r.startswith("jobs reconcile") for r in runs), runs
    assert any(r.startswith("enqueue popularity-update --older-than") for r in runs), runs


def test_compose_takes_secrets_from_the_environment_never_from_the_file():
    for name, service in compose()["services"].items():
        environment = service.get("environment") or {}
        for var, value in (environment.items() if isinstance(environment, dict) else []):
            if SECRET_NAMES.search(var) and var not in ("REDIS_URL",):
                assert value is None or "${" in str(value), f"services.{name}.{var} is written in the file"


# --- Kubernetes --------------------------------------------------------------------------------


def k8s_manifests(include_examples: bool = True) -> list[tuple[Path, dict]]:
    out = []
    for path in sorted((DEPLOY / "k8s").rglob("*.y*ml")):
        if include_examples or "examples" not in path.parts:
            out += [(path, doc) for doc in yaml_documents(path)]
    return out


CONFIG_MAP, SECRET = "spotify-sync-config", "spotify-sync"


def manifest(kind: str, name: str | None = None) -> dict:
    matches = [m for _, m in k8s_manifests() if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def test_manifests_are_namespace_free_and_hold_no_secret_values():
    for path, m in k8s_manifests():
        assert "namespace" not in m.get("metadata", {}), f"{rel(path)}: {m['kind']} names a namespace"
        if m["kind"] == "Secret":
            assert "examples" in path.parts, f"{rel(path)}: a Secret outside examples/"
            assert "EXAMPLE" in path.read_text(), rel(path)
            values = {**(m.get("stringData") or {}), **(m.get("data") or {})}
            for key, value in values.items():
                assert "REPLACE_ME" in str(value), f"{rel(path)}: {key} is not a placeholder"
        for container in containers(m):
            for var in container.get("env") or []:
                if SECRET_NAMES.search(var["name"]):
                    assert "secretKeyRef" in var.get("valueFrom", {}), f"{rel(path)}: {var['name']} not by reference"
    config = manifest("ConfigMap", CONFIG_MAP)
    assert not [k for k in config["data"] if SECRET_NAMES.search(k)], "a secret in the ConfigMap"


def test_every_secret_reference_names_a_key_of_the_example_secret():
    secret = manifest("Secret", SECRET)
    keys = set(secret.get("stringData") or {}) | set(secret.get("data") or {})
    for path, m in k8s_manifests(include_examples=False):
        for container in containers(m):
            for var in container.get("env") or []:
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in keys, (rel(path), ref)
        if m["kind"] == "TriggerAuthentication":
            for ref in m["spec"]["secretTargetRef"]:
                assert ref["name"] == secret["metadata"]["name"] and ref["key"] in keys, ref


def test_the_worker_deployment_has_probes_resources_and_a_metrics_service():
    deployment = manifest("Deployment", "spotify-sync-worker")
    spec = pod_spec(deployment)
    assert spec["securityContext"]["runAsNonRoot"] is True
    (worker,) = spec["containers"]
    assert worker["args"][0] == "worker"
    for probe in ("livenessProbe", "readinessProbe"):
        assert probe in worker, probe
    assert worker["resources"]["requests"] and worker["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports["metrics"] == 9191
    assert {"configMapRef": {"name": CONFIG_MAP}} in worker["envFrom"]

    service = manifest("Service", "spotify-sync-worker-metrics")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]


def test_the_migration_job_upgrades_the_database():
    job = manifest("Job", "spotify-sync-migrate")
    (container,) = pod_spec(job)["containers"]
    assert container["args"] == ["db", "upgrade"] and "command" not in container
    assert pod_spec(job)["restartPolicy"] == "Never"


def dramatiq_queue_names() -> set[str] | None:
    """The queues the workers consume, from workers/broker.py once it exists."""
    try:
        import workers.broker as broker  # noqa: F401
    except ImportError:
        return None
    for attribute in ("QUEUES", "QUEUE_NAMES"):
        names = getattr(broker, attribute, None)
        if names:
            return set(names.values() if isinstance(names, dict) else names)
    return None


def test_keda_scales_the_workers_on_the_dramatiq_queue_lists():
    scaled = manifest("ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == manifest("Deployment", "spotify-sync-worker")["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1  # parked (delayed) messages need a worker to hold them
    triggers = scaled["spec"]["triggers"]
    assert triggers and all(t["type"] == "redis" for t in triggers)

    namespace = manifest("ConfigMap", CONFIG_MAP)["data"].get("REDIS_NAMESPACE", Settings().redis_namespace)
    prefix = RedisKeys(namespace).dramatiq_namespace() + ":"
    lists = [t["metadata"]["listName"] for t in triggers]
    for name in lists:
        assert name.startswith(prefix), f"{name}: not a Dramatiq queue list under {prefix!r}"
        assert not name.endswith((".msgs", ".DQ", ".XQ")), f"{name}: not a ready-queue list"
    queues = dramatiq_queue_names()
    if queues is not None:
        assert {name.removeprefix(prefix) for name in lists} == queues
    for trigger in triggers:
        assert int(trigger["metadata"]["listLength"]) > 0


# --- systemd and cron --------------------------------------------------------------------------


def test_each_timer_starts_a_service_that_exists_and_units_read_one_environment_file():
    systemd = DEPLOY / "systemd"
    timers = sorted(systemd.glob("*.timer"))
    assert {t.stem for t in timers} >= {"spotify-sync-reconcile", "spotify-sync-popularity"}
    for timer in timers:
        assert (systemd / f"{timer.stem}.service").exists(), timer.name
        assert any(s == "Timer" for s, _, _ in unit_entries(timer.read_text()))
    assert (systemd / "spotify-sync-worker@.service").exists()
    examples = {p.name.removesuffix(".example") for p in systemd.glob("*.env.example")}
    for service in systemd.glob("*.service"):
        files = [v for _, k, v in unit_entries(service.read_text()) if k == "EnvironmentFile"]
        assert files and all(Path(f.lstrip("-")).name in examples for f in files), (service.name, files)
        users = [v for _, k, v in unit_entries(service.read_text()) if k == "User"]
        assert users and users[0] != "root", service.name


def test_the_pipelines_crontab_and_cronjobs_when_present_run_the_reconciler_and_the_refresh():
    crontab, cronjobs = DEPLOY / "crontab", DEPLOY / "k8s" / "cronjobs.yaml"
    if crontab.exists():
        runs = [" ".join(i.argv) for i in crontab_found(crontab.read_text(), "crontab").invocations]
        assert any(r.startswith("jobs reconcile") for r in runs), runs
        assert any(r.startswith("enqueue popularity-update") for r in runs), runs
    if cronjobs.exists():
        runs = [" ".join(i.argv) for i in k8s_found(yaml_documents(cronjobs), "cronjobs").invocations]
        assert any(r.startswith("jobs reconcile") for r in runs), runs
        assert any(r.startswith("enqueue popularity-update") for r in runs), runs
        for m in yaml_documents(cronjobs):
            assert "namespace" not in m.get("metadata", {})


@pytest.mark.parametrize("text, expected", [
    ("${A:-2}", "2"), ("${A}", "A"), ("${A:?set A}", "A"), ("x${B:-}y", "xy"),
])
def test_compose_interpolation_falls_back_to_defaults(text, expected):
    assert interpolate(text) == expected


def test_the_non_secret_settings_in_the_configmap_and_compose_parse():
    """Values, not only names: a malformed value would stop every pod with exit code 2."""
    data = manifest("ConfigMap", CONFIG_MAP)["data"]
    Settings.from_env({k: str(v) for k, v in data.items() if k in known_env_vars()})
    environment = compose()["x-app"]["environment"]
    Settings.from_env({k: interpolate(str(v)) for k, v in environment.items()
                       if k in known_env_vars() and not SECRET_NAMES.search(k)})
