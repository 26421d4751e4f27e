"""Rendering deploy/kubernetes/ and validating its objects offline (no cluster, no network).

`kubectl kustomize` (Debian's kubernetes-client, or any newer kubectl) renders each variant;
kubernetes-validate's bundled schemas check the built-in kinds, and KEDA's vendored CRD
schemas (tests/deploy/schemas/keda/) its own, both strictly: an unknown field is an error.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kubernetes_schemas

from tests.deploy import REPO_ROOT

KUSTOMIZE_ROOT = REPO_ROOT / "deploy" / "kubernetes"
MONITORING = KUSTOMIZE_ROOT / "monitoring"
KEDA_SCHEMAS = Path(__file__).with_name("schemas") / "keda"
# The oldest Kubernetes release the manifests are written for (autoscaling/v2, policy/v1,
# restricted pod security and the PodSecurity labels are all there).
KUBERNETES_VERSION = "1.30"
# Every variant `make deploy-check` renders, with what it adds to the others.
VARIANTS = {
    "cpu": "CPU workers, in-cluster Redis",
    "gpu": "NVIDIA GPU workers, in-cluster Redis",
    "gpu-scale-to-zero": "GPU workers scaled to zero while the queue is empty",
    "external-redis": "GPU workers, a Redis run elsewhere (TLS)",
    "sentinel": "GPU workers, a Redis found through Sentinel",
}

Manifest = dict[str, Any]
# What kustomize appends to a generated ConfigMap's name: a hash of its content.
GENERATED_SUFFIX = r"(-[a-z0-9]{10})?"


def kubectl() -> str:
    """The kubectl that renders kustomizations (`make test-tools` installs Debian's)."""
    found = shutil.which("kubectl")
    assert found, "kubectl is missing: run `make test-tools` (Debian package kubernetes-client)"
    return found


@functools.cache
def render(variant: str) -> tuple[Manifest, ...]:
    """The objects of one overlay, as `kubectl kustomize` renders them."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZE_ROOT / "overlays" / variant)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(item for item in yaml.safe_load_all(result.stdout) if item)


def named(objects: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    """The one object of `kind` whose name is `name` (generated names keep their hash)."""
    found = [
        item
        for item in objects
        if item["kind"] == kind
        and re.fullmatch(re.escape(name) + GENERATED_SUFFIX, item["metadata"]["name"])
    ]
    assert len(found) == 1, (kind, name, [item["metadata"]["name"] for item in found])
    return found[0]


def object_list(objects: tuple[Manifest, ...]) -> list[str]:
    """`Kind/name` of each object, generated ConfigMaps without their hash suffix."""
    listed = []
    for item in objects:
        name = item["metadata"]["name"]
        name = re.sub(GENERATED_SUFFIX + "$", "", name) if item["kind"] == "ConfigMap" else name
        listed.append(f"{item['kind']}/{name}")
    return sorted(listed)


def _strict(schema: Any) -> Any:
    """A CRD schema where an object with declared properties takes no other field.

    Structural CRD schemas leave unknown fields to the API server, which prunes them
    silently; offline, a misspelt field must fail instead.
    """
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@functools.cache
def _keda_schema(kind: str, version: str) -> dict[str, Any]:
    path = KEDA_SCHEMAS / f"{kind.lower()}-keda-{version}.json"
    assert path.is_file(), f"no vendored KEDA schema for {kind} {version}"
    schema: dict[str, Any] = _strict(json.loads(path.read_text()))
    # metadata is the API server's ObjectMeta; the CRD schema leaves it open.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def validate(item: Manifest) -> None:
    """Raise when the object breaks its kind's schema (built-in kinds or KEDA's)."""
    group, _, version = item["apiVersion"].rpartition("/")
    if group == "keda.sh":
        jsonschema.Draft7Validator(_keda_schema(item["kind"], version)).validate(
            copy.deepcopy(item)
        )
        return
    kubernetes_schemas.validate(item, KUBERNETES_VERSION, strict=True)


def pod_specs(objects: tuple[Manifest, ...]) -> dict[str, Manifest]:
    """Each Deployment's pod template spec, by Deployment name."""
    return {
        item["metadata"]["name"]: item["spec"]["template"]["spec"]
        for item in objects
        if item["kind"] == "Deployment"
    }


def container_environment(objects: tuple[Manifest, ...], deployment: str) -> dict[str, str]:
    """The variables a whisper-api container gets: its ConfigMaps, then its own `env`."""
    container = pod_specs(objects)[deployment]["containers"][0]
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config_map = named(objects, "ConfigMap", source["configMapRef"]["name"])
        environment.update(config_map["data"])
    for variable in container.get("env", []):
        assert "valueFrom" not in variable, f"{variable['name']}: settings are plain values"
        environment[variable["name"]] = variable["value"]
    return environment
