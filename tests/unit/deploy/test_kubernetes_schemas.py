"""Every manifest under deploy/k8s/ is valid for Kubernetes, strictly (an unknown field is an error,
as with `kubectl apply --validate=strict`, not silently dropped): the built-in kinds against the schemas
of the `kubernetes-validate` package, KEDA's kinds against KEDA's CRDs vendored in deploy/k8s/schemas/."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.unit.deploy.deployfiles import K8S, k8s_manifests, manifest, rel

KUBERNETES_VERSION = "1.37.0"
KEDA_CRDS = K8S / "schemas" / "keda-v2.20.2"


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD schema in which every object that lists its properties allows no other: Kubernetes
    prunes unknown fields of a custom resource, and strict validation rejects them instead. Objects
    marked x-kubernetes-preserve-unknown-fields keep whatever they hold."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in out["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = [strict(sub) for sub in out[key]]
    return out


@cache
def crd_validators() -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    """(apiVersion, kind) -> a validator of that custom resource, for each vendored CRD version."""
    out = {}
    for path in sorted(KEDA_CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition", rel(path)
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            # OpenAPI v3 schemas are JSON Schema draft 4 with extensions (x-kubernetes-*) it ignores.
            out[key] = jsonschema.Draft4Validator(strict(version["schema"]["openAPIV3Schema"]))
    return out


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top)"


def validation_problems(document: dict[str, Any]) -> list[str]:
    """Why Kubernetes (with KEDA installed) would refuse this manifest; empty when it would take it."""
    key = (document.get("apiVersion", ""), document.get("kind", ""))
    if key in crd_validators():
        problems = [f"{_where(e)}: {e.message}" for e in crd_validators()[key].iter_errors(document)]
        # The CRD says only `metadata: object`; the API server checks it as any object's ObjectMeta:
        # validate it as the metadata of a built-in kind.
        carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": document.get("metadata")}
        return problems + validation_problems(carrier)
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[0]} {key[1]} in Kubernetes {KUBERNETES_VERSION} nor in {rel(KEDA_CRDS)}"]
    except kubernetes_validate.ValidationError as error:
        return [f"{_where(error)}: {error.message}"]
    return []


def test_every_manifest_is_valid_for_kubernetes_strictly():
    manifests = k8s_manifests()
    assert {m["kind"] for _, m in manifests} >= {"Deployment", "Service", "Job", "CronJob", "ConfigMap", "Secret",
                                                 "ScaledObject", "TriggerAuthentication"}
    problems = {f"{rel(path)}: {m['kind']}/{m['metadata']['name']}": found for path, m in manifests
                if (found := validation_problems(m))}
    assert problems == {}


def test_keda_objects_are_checked_against_the_vendored_crds():
    assert set(crd_validators()) == {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}
    for kind in ("ScaledObject", "TriggerAuthentication"):
        assert (manifest(kind)["apiVersion"], kind) in crd_validators()


def test_validation_catches_unknown_fields_wrong_types_and_missing_fields():
    deployment = copy.deepcopy(manifest("Deployment", "spotify-sync-worker"))
    deployment["spec"]["template"]["spec"]["containers"][0]["argss"] = ["worker"]
    assert any("argss" in p for p in validation_problems(deployment)), validation_problems(deployment)

    cronjob = copy.deepcopy(manifest("CronJob", "spotify-sync-popularity"))
    cronjob["spec"]["startingDeadlineSeconds"] = "four minutes"
    assert validation_problems(cronjob)

    scaled = copy.deepcopy(manifest("ScaledObject"))
    scaled["spec"]["triggers"][0]["metdata"] = scaled["spec"]["triggers"][0].pop("metadata")
    scaled["spec"]["maxReplicaCount"] = "ten"
    del scaled["spec"]["scaleTargetRef"]
    scaled["metadata"]["labelz"] = {}
    problems = validation_problems(scaled)
    # The renamed trigger field is two problems: `metdata` unknown and `metadata` missing.
    assert len(problems) == 5 and all(any(word in p for p in problems) for word in (
        "metdata", "'metadata' is a required", "'ten'", "scaleTargetRef", "labelz")), problems

    auth = copy.deepcopy(manifest("TriggerAuthentication"))
    auth["spec"]["secretTargetRef"][0]["secret"] = auth["spec"]["secretTargetRef"][0].pop("name")
    assert len(validation_problems(auth)) == 2, validation_problems(auth)  # `name` missing, `secret` unknown

    unknown = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "x"}}
    assert "no schema" in validation_problems(unknown)[0]
