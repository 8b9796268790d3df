"""The schedules: deploy/crontab and the Kubernetes CronJobs."""

from __future__ import annotations

from tests.unit.deploy.deployfiles import DEPLOY, crontab_found, k8s_found, yaml_documents


def test_the_pipelines_crontab_and_cronjobs_run_the_refresh_and_no_reconciler():
    # The workers' dispatcher reconciles every minute: a scheduled `jobs reconcile` would only
    # repeat it (and suggest the fleet needs it).
    crontab, cronjobs = DEPLOY / "crontab", DEPLOY / "k8s" / "cronjobs.yaml"
    for runs in ([" ".join(i.argv) for i in crontab_found(crontab.read_text(), "crontab").invocations],
                 [" ".join(i.argv) for i in k8s_found(yaml_documents(cronjobs), "cronjobs").invocations]):
        assert not any(r.startswith("jobs reconcile") for r in runs), runs
        assert any(r.startswith("enqueue popularity-update") for r in runs), runs
    for m in yaml_documents(cronjobs):
        assert "namespace" not in m.get("metadata", {})

