"""Render and validate Istio ``WasmPlugin`` resources against the CRD schema and CEL rules."""

from __future__ import annotations

import copy
import functools
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pwtool.manifests._plugin import ManifestError

CRD_ENV = "PWTOOL_WASMPLUGIN_CRD"
_PACKAGED_CRD = Path(__file__).parent / "data" / "istio-wasmplugin-crd.yaml"
PHASES = ("AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE")
FAIL_STRATEGIES = ("FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD")
PULL_POLICIES = ("IfNotPresent", "Always", "UNSPECIFIED_POLICY")
SHA256_RE = re.compile(r"^[a-f0-9]{64}$")
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_URL_SCHEMES = ("", "http", "https", "oci", "file")


def crd_path() -> Path:
    """The WasmPlugin CRD: ``$PWTOOL_WASMPLUGIN_CRD`` if set, else the copy shipped in the package."""
    override = os.environ.get(CRD_ENV)
    return Path(override) if override else _PACKAGED_CRD


def _strict(schema: Any) -> Any:
    """Copy of an OpenAPI schema where objects with ``properties`` reject unknown fields."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=4)
def _load_schema(path: str) -> tuple[dict[str, Any], str]:
    try:
        crd = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"cannot read the WasmPlugin CRD {path}: {exc}; set {CRD_ENV} to the CRD file") from exc
    group = crd["spec"]["group"]
    versions = [v for v in crd["spec"]["versions"] if v.get("served")]
    version = next((v for v in versions if v.get("storage")), versions[0])
    spec_schema = _strict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])
    doc = {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"enum": [f"{group}/{v['name']}" for v in versions]},
            "kind": {"const": crd["spec"]["names"]["kind"]},
            "metadata": {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN},
                    "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS_LABEL},
                    "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "spec": spec_schema,
        },
    }
    return doc, f"{group}/{version['name']}"


def api_version() -> str:
    """``extensions.istio.io/<storage version>`` read from the CRD."""
    return _load_schema(str(crd_path()))[1]


def _is_go_url(text: str) -> bool:
    """Roughly Go's ``url.ParseRequestURI`` success, which CEL's ``isURL`` uses."""
    if not text or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in text):
        return False
    parts = urllib.parse.urlsplit(text)
    if parts.scheme:
        if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*$", parts.scheme):
            return False
        if parts.netloc:
            host = parts.netloc.rsplit("@", 1)[-1]
            if not re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?$", host):
                return False
        return True
    return text.startswith("/")


def url_scheme_ok(url: str) -> bool:
    """The CRD's CEL rule on ``spec.url``."""
    if _is_go_url(url):
        return urllib.parse.urlsplit(url).scheme.lower() in _URL_SCHEMES
    candidate = "http://" + url
    return _is_go_url(candidate) and urllib.parse.urlsplit(candidate).scheme in _URL_SCHEMES


def cel_errors(spec: dict[str, Any]) -> list[str]:
    """Check the CRD's ``x-kubernetes-validations`` (CEL) rules that jsonschema cannot."""
    errors: list[str] = []
    url = spec.get("url")
    if isinstance(url, str) and url and not url_scheme_ok(url):
        errors.append(f"spec.url: {url!r}: url must have schema one of [http, https, file, oci]")
    targets = [key for key in ("selector", "targetRef", "targetRefs") if key in spec]
    if len(targets) > 1:
        errors.append(f"spec: only one of targetRefs or selector can be set (got {' and '.join(targets)})")
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    if isinstance(labels, dict):
        for key, value in labels.items():
            if "*" in str(key):
                errors.append(f"spec.selector.matchLabels: wildcard not allowed in label key match ({key!r})")
            if str(key) == "":
                errors.append("spec.selector.matchLabels: key must not be empty")
            if "*" in str(value):
                errors.append(f"spec.selector.matchLabels.{key}: wildcard not allowed in label value match")
    refs = ([spec["targetRef"]] if isinstance(spec.get("targetRef"), dict) else []) + [
        r for r in spec.get("targetRefs") or [] if isinstance(r, dict)]
    for ref in refs:
        if ref.get("namespace"):
            errors.append(f"targetRef {ref.get('kind')}/{ref.get('name')}: cross namespace referencing is not "
                          "currently supported")
    env = (spec.get("vmConfig") or {}).get("env") or []
    names: set[str] = set()
    for item in env if isinstance(env, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("valueFrom", "") == "HOST" and "value" in item:
            errors.append(f"spec.vmConfig.env {item.get('name')}: value may only be set when valueFrom is INLINE")
        if item.get("name") in names:
            errors.append(f"spec.vmConfig.env: duplicate name {item.get('name')!r}")
        names.add(str(item.get("name")))
    for m in spec.get("match") or []:
        nums = [p.get("number") for p in (m.get("ports") or []) if isinstance(p, dict)] if isinstance(m, dict) else []
        if len(nums) != len(set(nums)):
            errors.append(f"spec.match.ports: duplicate port numbers {nums}")
    priority = spec.get("priority")
    if isinstance(priority, int) and not -(2 ** 31) <= priority < 2 ** 31:
        errors.append(f"spec.priority: {priority} is out of the int32 range")
    return errors


def validate_wasmplugin(doc: dict[str, Any], crd: Path | None = None) -> None:
    """Raise ``ManifestError`` listing every schema and CEL violation in ``doc``."""
    schema, _ = _load_schema(str(crd or crd_path()))
    validator = jsonschema.Draft7Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in err.absolute_path) or "(document)"
        problems.append(f"{where}: {err.message}")
    if isinstance(doc.get("spec"), dict):
        problems += cel_errors(doc["spec"])
    if problems:
        name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), dict) else "?"
        raise ManifestError(f"WasmPlugin {name} is invalid:\n  - " + "\n  - ".join(problems))


def normalize_sha256(value: str) -> str:
    """``sha256:ABC..``/``abc..`` → 64 lowercase hex digits, or ``ManifestError``."""
    hexpart = value.strip().removeprefix("sha256:").lower()
    if not SHA256_RE.match(hexpart):
        raise ManifestError(f"sha256 {value!r} is not 64 hex digits (optionally prefixed sha256:); copy the "
                            "digest printed by `pwtool push` or `sha256sum plugin.wasm`")
    return hexpart


def parse_target_ref(text: str) -> dict[str, str]:
    """``Kind/name`` or ``group/Kind/name`` (``Gateway/my-gw``, ``gateway.networking.k8s.io/Gateway/gw``)."""
    parts = text.split("/")
    if len(parts) == 2:
        kind, name = parts
        group = "gateway.networking.k8s.io" if kind in ("Gateway", "GatewayClass") else ""
    elif len(parts) == 3:
        group, kind, name = parts
    else:
        raise ManifestError(f"--target-ref {text!r}: expected KIND/NAME or GROUP/KIND/NAME, e.g. Gateway/my-gateway")
    ref = {"kind": kind, "name": name}
    if group:
        ref["group"] = group
    return ref


def render_wasmplugin(
    *, name: str, url: str, plugin_name: str | None = None, namespace: str | None = None,
    sha256: str | None = None, plugin_config: dict[str, Any] | None = None, phase: str | None = None,
    priority: int | None = None, fail_strategy: str | None = None, selector: dict[str, str] | None = None,
    target_refs: list[dict[str, str]] | None = None, match: list[dict[str, Any]] | None = None,
    image_pull_policy: str | None = None, image_pull_secret: str | None = None,
    env: list[dict[str, str]] | None = None, plugin_type: str | None = None,
    labels: dict[str, str] | None = None, validate: bool = True,
) -> dict[str, Any]:
    """Build a ``WasmPlugin`` resource; validated against the CRD unless ``validate`` is false."""
    if selector is not None and target_refs:
        raise ManifestError("pass either a selector (--selector) or target refs (--target-ref), not both: "
                            "Istio allows only one of selector, targetRef and targetRefs")
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    spec: dict[str, Any] = {}
    if selector is not None:
        spec["selector"] = {"matchLabels": dict(selector)}
    if target_refs:
        spec["targetRefs"] = [dict(r) for r in target_refs]
    spec["url"] = url
    if sha256:
        spec["sha256"] = normalize_sha256(sha256)
    if image_pull_policy:
        spec["imagePullPolicy"] = image_pull_policy
    if image_pull_secret:
        spec["imagePullSecret"] = image_pull_secret
    if plugin_name:
        spec["pluginName"] = plugin_name
    if plugin_config:
        spec["pluginConfig"] = copy.deepcopy(plugin_config)
    if phase:
        spec["phase"] = phase
    if priority is not None:
        spec["priority"] = priority
    if fail_strategy:
        spec["failStrategy"] = fail_strategy
    if plugin_type:
        spec["type"] = plugin_type
    if match:
        spec["match"] = copy.deepcopy(match)
    if env:
        spec["vmConfig"] = {"env": [dict(e) for e in env]}
    doc = {"apiVersion": api_version(), "kind": "WasmPlugin", "metadata": metadata, "spec": spec}
    if validate:
        validate_wasmplugin(doc)
    return doc


def to_yaml(doc: dict[str, Any] | list[dict[str, Any]]) -> str:
    """Block-style YAML with keys in insertion order."""
    if isinstance(doc, list):
        return "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in doc)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
