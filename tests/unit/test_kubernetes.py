"""deploy/kubernetes/, validated offline: every manifest of the base and the example overlay
against the Kubernetes API schemas (PyPI kubernetes-validate, pinned) and the prometheus-operator
CRD schemas (vendored in tests/support/crds/, see its README), both strict (an unknown field
fails, as `kubectl apply` with server-side field validation does); the kustomizations built
with tests/support/kustomize.py and compared with `kubectl kustomize` where kubectl is installed;
and what the Deployment promises an operator (non-root, read-only root, probes, grace period,
journal volume, secrets by reference)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from exporter.core.settings import OPTIONS, parse_settings
from exporter.web.allowed_hosts import AllowedHosts
from mixin import ROOT
from tests.support.kustomize import UnsupportedKustomization, build, load_documents

KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAY = KUBERNETES / "overlays" / "example"
CRDS = ROOT / "tests" / "support" / "crds"
KUBERNETES_VERSION = "1.31.0"  # the oldest Kubernetes release the manifests are checked against
CRD_FILES = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
SECRET = "session-metrics-exporter"
CLEANUP_SECONDS = 5  # after drain + timeout: flush the journal, close Redis


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists the known ones."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(item) for item in schema]
    return schema


@cache
def crd_validator(kind: str, version: str) -> jsonschema.Draft7Validator:
    crd = yaml.safe_load((CRDS / CRD_FILES[kind]).read_text(encoding="utf-8"))
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strict(served["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: checked below
    return jsonschema.Draft7Validator(schema)


def validate(document: dict[str, Any]) -> None:
    """Raises on a manifest the API server would refuse."""
    kind = document["kind"]
    if kind in CRD_FILES:
        group, _, version = document["apiVersion"].partition("/")
        assert group == "monitoring.coreos.com", document["apiVersion"]
        crd_validator(kind, version).validate(document)
        meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": document["metadata"]}
        kubernetes_validate.validate(meta, KUBERNETES_VERSION, strict=True)  # ObjectMeta
    else:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {"base": build(BASE), "overlay": build(OVERLAY)}


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (document,) = [d for d in documents if d["kind"] == kind]
    return document


def container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    exporter: dict[str, Any]
    (exporter,) = by_kind(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    return exporter


def arg(exporter: dict[str, Any], flag: str) -> str:
    args = exporter["args"]
    value: str = args[args.index(flag) + 1]
    return value


@pytest.mark.parametrize("tree", ["base", "overlay"])
def test_every_manifest_is_valid(tree: str) -> None:
    documents = manifests()[tree]
    kinds = {d["kind"] for d in documents}
    assert kinds == {"Deployment", "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap"}
    for document in documents:
        validate(document)


def test_every_file_in_the_tree_is_a_resource_of_a_kustomization() -> None:
    used = {BASE / "kustomization.yaml", OVERLAY / "kustomization.yaml"}
    for directory in (BASE, OVERLAY):
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        used |= {(directory / r).resolve() for r in kustomization["resources"]}
    files = {p.resolve() for p in KUBERNETES.rglob("*.yaml")}
    assert files - used == set()
    for path in files - {BASE / "kustomization.yaml", OVERLAY / "kustomization.yaml"}:
        for document in load_documents(path):
            validate(document)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Deployment", "/spec/replicas", "three"),
        ("Deployment", "/spec/template/spec/containers/0/livenessProbe/httpGet/paht", "/x"),
        ("ServiceMonitor", "/spec/endpoints/0/intervall", "15s"),
        ("ServiceMonitor", "/spec/endpoints", {"port": "http"}),
        ("PrometheusRule", "/spec/groups/0/rules/0/labels", "critical"),
        ("ConfigMap", "/metadata/labels/grafana_dashboard", 1),
    ],
)
def test_validation_refuses_broken_manifests(kind: str, path: str, value: Any) -> None:
    import jsonpatch

    document = copy.deepcopy(by_kind(manifests()["base"], kind))
    broken = jsonpatch.apply_patch(document, [{"op": "add", "path": path, "value": value}])
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(broken)


def test_the_python_build_matches_kubectl_kustomize() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Python kustomize subset alone is checked")
    for directory in (BASE, OVERLAY):
        result = subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        theirs = [d for d in yaml.safe_load_all(result.stdout) if d]
        key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
        assert sorted(theirs, key=key) == sorted(build(directory), key=key), directory


def test_the_kustomize_subset_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(UnsupportedKustomization):
        build(tmp_path)


def test_the_deployment_runs_locked_down() -> None:
    for documents in manifests().values():
        pod = by_kind(documents, "Deployment")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        exporter = container(documents)
        security = exporter["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        resources = exporter["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"]
        assert resources["limits"]["memory"]


def test_probes_and_grace_period_follow_the_exporters_shutdown() -> None:
    documents = manifests()["base"]
    exporter = container(documents)
    assert exporter["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert exporter["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    drain = float(arg(exporter, "--shutdown-drain"))
    timeout = float(arg(exporter, "--shutdown-timeout"))
    assert drain > 0, "without a drain the Service keeps sending to a stopping pod"
    grace = by_kind(documents, "Deployment")["spec"]["template"]["spec"]
    assert grace["terminationGracePeriodSeconds"] == drain + timeout + CLEANUP_SECONDS


def test_the_journal_is_on_a_volume_and_the_flags_are_the_exporters() -> None:
    documents = manifests()["base"]
    exporter = container(documents)
    journal = arg(exporter, "--journal-dir")
    (mount,) = [m for m in exporter["volumeMounts"] if m["mountPath"] == journal]
    volumes = by_kind(documents, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert mount["name"] in {v["name"] for v in volumes}
    known = {"--" + option.name.replace("_", "-") for option in OPTIONS}
    flags = {a for a in exporter["args"] if a.startswith("--")}
    assert flags <= known, flags - known


def test_secrets_are_referenced_never_included() -> None:
    for documents in manifests().values():
        assert "Secret" not in {d["kind"] for d in documents}
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container(documents)["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert {r["name"] for r in refs.values()} == {SECRET}
        assert refs["SESSION_EXPORTER_REDIS_URL"]["key"] == "redis-url"
        assert refs["SESSION_EXPORTER_FIGMA_TOKEN"] == {
            "name": SECRET,
            "key": "figma-token",
            "optional": True,
        }
        assert refs["SESSION_EXPORTER_ADMIN_TOKEN"]["key"] == "admin-token"
        # A value written in the manifest is never a secret setting's.
        secret_envs = {option.env for option in OPTIONS if option.secret}
        plain = {e["name"] for e in container(documents)["env"] if "valueFrom" not in e}
        assert plain and not plain & secret_envs


def test_service_servicemonitor_and_pods_line_up() -> None:
    documents = manifests()["overlay"]
    deployment, service = by_kind(documents, "Deployment"), by_kind(documents, "Service")
    monitor = by_kind(documents, "ServiceMonitor")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert {p["name"] for p in container(documents)["ports"]} >= ports
    (endpoint,) = monitor["spec"]["endpoints"]
    (relabel,) = endpoint["relabelings"]
    assert relabel == {"action": "replace", "targetLabel": "job", "replacement": "session-exporter"}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_rules_and_dashboards_are_wrapped_from_their_one_source() -> None:
    documents = manifests()["base"]
    rule = by_kind(documents, "PrometheusRule")
    groups = [
        group
        for name in ("recording.yml", "alerts.yml")
        for group in yaml.safe_load((ROOT / "prometheus" / "rules" / name).read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == groups
    configmap = by_kind(documents, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboards = {p.name: p.read_text() for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    assert configmap["data"] == dashboards
    for text in configmap["data"].values():
        json.loads(text)


@pytest.mark.parametrize("tree", ["base", "overlay"])
def test_the_json_api_answers_through_the_service_and_to_prometheus(tree: str) -> None:
    documents = manifests()[tree]
    exporter = container(documents)
    env = {e["name"]: e.get("value") for e in exporter["env"]}
    settings = parse_settings({"web_allowed_host": env["SESSION_EXPORTER_WEB_ALLOWED_HOST"]})
    hosts = AllowedHosts(arg(exporter, "--listen").rpartition(":")[0], settings.web_allowed_host)
    service = by_kind(documents, "Service")["metadata"]["name"]
    namespace = by_kind(documents, "Service")["metadata"].get("namespace", "default")
    for name in (
        f"{service}:9464",
        f"{service}.{namespace}.svc:9464",
        f"{service}.{namespace}.svc.cluster.local",
        "10.42.0.17:9464",  # a pod IP: how Prometheus scrapes
    ):
        assert hosts.allows(name), name
    assert not hosts.allows("evil.example:9464")
