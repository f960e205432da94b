"""`kustomize build` for the subset of kustomize deploy/kubernetes/ uses, in Python.

`kubectl` is not installed on CI (Debian packages none), so the tests build the kustomizations
with this, and compare it with `kubectl kustomize` wherever kubectl is installed. Supported:
`resources` (files and directories), `namespace`, `images` (newName/newTag), `replicas` and
`patches` whose `patch` is an inline JSON 6902 list with a `target` of kind and name. Any other
kustomization key is refused, so a manifest cannot silently rely on what this does not do.

    documents = build(Path("deploy/kubernetes/overlays/example"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
WORKLOADS = {"Deployment", "StatefulSet", "ReplicaSet"}


class UnsupportedKustomization(ValueError):
    """The kustomization uses a feature this subset does not implement."""


def build(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise UnsupportedKustomization(f"{directory}: unsupported keys {sorted(unknown)}")
    documents: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        documents += build(path) if path.is_dir() else load_documents(path)
    if namespace := kustomization.get("namespace"):
        for document in documents:
            if document["kind"] not in CLUSTER_SCOPED:
                document["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        _set_image(documents, image)
    for replicas in kustomization.get("replicas", []):
        for document in _named(documents, WORKLOADS, replicas["name"]):
            document["spec"]["replicas"] = replicas["count"]
    for patch in kustomization.get("patches", []):
        _patch(documents, patch)
    return documents


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _named(documents: list[dict[str, Any]], kinds: set[str], name: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] in kinds and d["metadata"]["name"] == name]


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    if document["kind"] not in WORKLOADS:
        return []
    spec = document["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _set_image(documents: list[dict[str, Any]], image: dict[str, str]) -> None:
    for document in documents:
        for container in _containers(document):
            name, _, tag = container["image"].partition(":")
            if name != image["name"]:
                continue
            new_name = image.get("newName", name)
            new_tag = image.get("newTag", tag)
            container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def _patch(documents: list[dict[str, Any]], patch: dict[str, Any]) -> None:
    if set(patch) != {"target", "patch"} or set(patch["target"]) - {"kind", "name"}:
        raise UnsupportedKustomization(f"only inline patches with kind/name targets: {patch}")
    operations = yaml.safe_load(patch["patch"])
    if not isinstance(operations, list):
        raise UnsupportedKustomization("only JSON 6902 patches (a list of operations)")
    target = patch["target"]
    matched = _named(documents, {target["kind"]}, target["name"])
    if not matched:
        raise UnsupportedKustomization(f"patch target not found: {target}")
    for document in matched:
        patched = jsonpatch.apply_patch(document, operations)
        document.clear()
        document.update(patched)
