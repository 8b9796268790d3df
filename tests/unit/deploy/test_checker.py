"""The checker itself can fail: bad commands, options, values and variables in every format are caught,
and good ones pass."""

from __future__ import annotations

import pytest

from tests.unit.deploy.checker import interpolate, problems, shell_invocations
from tests.unit.deploy.deployfiles import (
    compose_found,
    crontab_found,
    deploy_files,
    dockerfile_found,
    found_in,
    k8s_found,
    systemd_found,
)


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

    dockerfile = ('FROM python:3.11-slim AS b\nENV LOG_LEVEL=INFO\nFROM python:3.11-slim\n'
                  'ENTRYPOINT ["spotify-sync"]\nCMD ["db", "current"]\n')
    assert [i.argv for i in dockerfile_found(dockerfile, "Dockerfile").invocations] == [["db", "current"]]
    assert problems(dockerfile_found(dockerfile, "Dockerfile")) == []

    unit = ("[Service]\nEnvironment=LOG_LEVEL=debug dramatiq_prom_port=9192\n"
            "ExecStart=/opt/v/bin/spotify-sync keys rotate --batch-size 10\n")
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


@pytest.mark.parametrize("text, expected", [
    ("${A:-2}", "2"), ("${A}", "A"), ("${A:?set A}", "A"), ("x${B:-}y", "xy"),
])
def test_compose_interpolation_falls_back_to_defaults(text, expected):
    assert interpolate(text) == expected

