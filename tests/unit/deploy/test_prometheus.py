"""deploy/prometheus/: the alert rules load in Prometheus (`promtool check rules`), their unit tests
pass (`promtool test rules`), each alert is shown both firing and not firing, they name only metrics of
the contract, and each has its runbook in deploy/README.md."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.unit.deploy.deployfiles import DEPLOY
from tests.unit.deploy.metrics_contract import expression_problems

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool (Debian's `prometheus` package); a machine without it fails the test."""
    binary = shutil.which("promtool")
    assert binary, "promtool not found: apt-get install prometheus (the tests need only promtool)"
    return subprocess.run([binary, *map(str, args)], check=False, capture_output=True, text=True, timeout=120)


def alerts(path: Path = RULES) -> list[dict]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def test_prometheus_loads_the_rules():
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_the_rules_unit_tests_pass():
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_each_alert_is_tested_firing_and_not_firing():
    checks: dict[str, set[bool]] = {}
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            checks.setdefault(check["alertname"], set()).add(bool(check.get("exp_alerts")))
    names = [rule["alert"] for rule in alerts()]
    assert sorted(checks) == sorted(names), "alerts without tests, or tests of no alert"
    assert {name: fired for name, fired in checks.items() if fired != {True, False}} == {}


def _with_every_expr(tmp_path: Path, rewrite: str) -> subprocess.CompletedProcess[str]:
    """The unit tests run against a copy of the rules whose every expr is `rewrite` (with {expr})."""
    document = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["expr"] = rewrite.format(expr=rule["expr"])
    (tmp_path / RULES.name).write_text(yaml.safe_dump(document))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    return promtool("test", "rules", tmp_path / RULE_TESTS.name)


def test_the_unit_tests_fail_every_alert_that_never_fires(tmp_path):
    result = _with_every_expr(tmp_path, "vector(1) > 2")
    assert result.returncode != 0
    for name in (rule["alert"] for rule in alerts()):
        assert f"alertname: {name}," in result.stdout + result.stderr, name


def test_the_unit_tests_fail_every_alert_that_always_fires(tmp_path):
    result = _with_every_expr(tmp_path, "({expr}) or vector(1)")
    assert result.returncode != 0
    for name in (rule["alert"] for rule in alerts()):
        assert f"alertname: {name}," in result.stdout + result.stderr, name


def test_the_alerts_name_only_metrics_of_the_contract():
    assert {rule["alert"]: expression_problems(rule["expr"]) for rule in alerts()
            if expression_problems(rule["expr"])} == {}


def test_each_alert_has_a_severity_a_summary_and_its_runbook_in_the_readme():
    readme = (DEPLOY / "README.md").read_text()
    headings = {line.removeprefix("### ").strip() for line in readme.splitlines() if line.startswith("### ")}
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["runbook_url"] == f"deploy/README.md#{name.lower()}", name
        assert name in headings, f"deploy/README.md has no '### {name}' runbook"
