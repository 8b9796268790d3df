"""The checker: does a `spotify-sync ...` line parse by the real click command tree (`cli.main`),
and is each environment variable set one the settings read?

The deployment files are parsed, never run (no Docker engine, no cluster here). Each format's
parser (deployfiles.py) hands over what a file runs and sets; this module judges it: a renamed
command, a removed option, a value of the wrong type or a misspelt variable is a problem.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import click

from cli import main as cli_main
from shared.settings import known_env_vars

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

