"""deploy/docker-compose.yml: the order services start in, scaling, schedules and secrets."""

from __future__ import annotations

from shared.settings import Settings, known_env_vars
from tests.unit.deploy.checker import interpolate
from tests.unit.deploy.deployfiles import SECRET_NAMES, compose, compose_argv, compose_found


def test_compose_migrates_once_before_any_worker_or_cron_starts():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "worker", "cron"} <= set(services)
    assert compose_argv(services["migrate"]["command"]) == ["db", "upgrade"]
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


def test_compose_cron_runs_the_popularity_refresh_and_no_reconciler():
    runs = [" ".join(i.argv) for i in compose_found(compose(), "compose").invocations if "cron" in i.where]
    assert not any(r.startswith("jobs reconcile") for r in runs), runs  # the workers' dispatcher does it
    assert any(r.startswith("enqueue popularity-update") for r in runs), runs  # older than POPULARITY_TTL


def test_compose_takes_secrets_from_the_environment_never_from_the_file():
    for name, service in compose()["services"].items():
        environment = service.get("environment") or {}
        for var, value in (environment.items() if isinstance(environment, dict) else []):
            if SECRET_NAMES.search(var) and var not in ("REDIS_URL",):
                assert value is None or "${" in str(value), f"services.{name}.{var} is written in the file"



def test_the_non_secret_settings_in_compose_parse():
    """Values, not only names: a malformed value would stop every container with exit code 2."""
    environment = compose()["x-app"]["environment"]
    Settings.from_env({k: interpolate(str(v)) for k, v in environment.items()
                       if k in known_env_vars() and not SECRET_NAMES.search(k)})
