"""deploy/k8s/: secrets by reference only, the worker Deployment, the migration Job and KEDA."""

from __future__ import annotations

from shared.keys import RedisKeys
from shared.settings import Settings, known_env_vars
from tests.unit.deploy.deployfiles import (
    CONFIG_MAP,
    SECRET,
    SECRET_NAMES,
    containers,
    k8s_manifests,
    manifest,
    pod_spec,
    rel,
)


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
        from workers import broker
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



def test_the_non_secret_settings_in_the_configmap_parse():
    """Values, not only names: a malformed value would stop every pod with exit code 2."""
    data = manifest("ConfigMap", CONFIG_MAP)["data"]
    Settings.from_env({k: str(v) for k, v in data.items() if k in known_env_vars()})
