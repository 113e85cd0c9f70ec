"""``pwtool manifest``: render Istio WasmPlugin resources and plain-Envoy wasm configs."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml
from click.core import ParameterSource

from pwtool.cli._errors import fail
from pwtool.cli._wasm import module_problem
from pwtool.manifests import (
    FAIL_STRATEGIES, FAILURE_POLICIES, PHASES, PULL_POLICIES, RUNTIMES, ManifestError, PluginInfo, bootstrap,
    ecds_filter, ecds_resource, fetch_cluster, http_filter, load_plugin, merge_settings, normalize_sha256,
    parse_target_ref, plugin_config, render_wasmplugin, resource_name, to_yaml, wasm_service,
)

if TYPE_CHECKING:
    from pwtool.oci import Reference


def _plugin(plugin_dir: Path | None, plugin_name: str | None, root_id: str | None) -> PluginInfo:
    if plugin_dir is not None:
        info = load_plugin(plugin_dir)
    elif plugin_name or root_id:
        info = PluginInfo(plugin_name or str(root_id), root_id or str(plugin_name))
    else:
        raise ManifestError("pass a PLUGIN_DIR (holding plugin.toml) or --plugin-name")
    if plugin_name:
        info.name = plugin_name
    if root_id:
        info.root_id = root_id
    return info


_LARGE_CONFIG = 1 << 20
"""pluginConfig size (bytes of JSON) worth a warning: etcd keeps a whole object in 1.5 MiB."""

SET_HELP = ("Override a [config] value from plugin.toml; KEY may be dotted (limits.max_bytes); VALUE is JSON "
            "when it parses as JSON (3, true, null, [1, 2], {\"a\": 1}, \"1.10\"), else text; repeatable.")

# A Kubernetes label: an optional DNS-subdomain prefix and '/', then a name of up to 63
# characters; a value is empty or a name. Istio matches workloads on these.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")


def _pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; a key given twice is an error, not a silent overwrite."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ManifestError(f"{flag} {item!r}: expected KEY=VALUE")
        if key in out:
            raise ManifestError(f"{flag} {key}= is given twice ({out[key]!r} and {value!r}). "
                                f"Fix: pass each {flag} key once")
        out[key] = value
    return out


def _selector(items: tuple[str, ...]) -> dict[str, str]:
    """``--selector`` options as matchLabels, each checked against Kubernetes label syntax."""
    labels = _pairs(items, "--selector")
    for key, value in labels.items():
        if "*" in key + value:
            continue  # the CRD's own rule refuses wildcards, with Istio's words
        if not _LABEL_KEY.match(key):
            raise ManifestError(f"--selector {key}={value}: {key!r} is not a Kubernetes label key (letters, digits, "
                                "'-', '_', '.', at most 63, optionally after a DNS prefix and '/'), so it would "
                                "match no workload. Fix: use the label as `kubectl get pods --show-labels` prints it")
        if not _LABEL_VALUE.match(value):
            raise ManifestError(f"--selector {key}={value}: {value!r} is not a Kubernetes label value (at most 63 "
                                "letters, digits, '-', '_', '.', starting and ending with a letter or digit), so it "
                                "would match no workload. Fix: use the label as `kubectl get pods --show-labels` "
                                "prints it")
    return labels


def _leading_comments(path: Path) -> str:
    """The comment block at the top of an existing file (kept when the file is regenerated)."""
    if not path.is_file():
        return ""
    lines = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


_OUTPUT_SUFFIXES = (".yaml", ".yml", ".json")


def _is_module(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"\0asm"
    except OSError:
        return False


def _check_output(output: Path | None, info: PluginInfo) -> None:
    """Refuse, before rendering, an -o that cannot be written or would overwrite the plugin's
    own files (anything in its directory but an earlier .yaml/.yml/.json output) or a module."""
    if output is None:
        return
    from pwtool.build._files import OutputPathError, check_output_path, shown_output

    where = f"plugin {info.name!r}: -o {shown_output(output)}"
    try:
        check_output_path(output, example="manifests/plugin.yaml", protected_dir=info.path,
                          allowed_suffixes=_OUTPUT_SUFFIXES)
    except OutputPathError as error:
        raise ManifestError(f"{where} {error}") from None
    if output.is_file() and _is_module(output):
        raise ManifestError(f"{where} is a WebAssembly module; writing the manifest there would destroy it. "
                            "Fix: pass -o a .yaml or .json path")


def _emit(text: str, output: Path | None, as_json: bool, keep_header: bool = False) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        header = _leading_comments(output) if keep_header else ""
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(header + text)
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror or error}. Fix: pass -o a path in a directory you can "
             "write to", as_json)
    click.echo(f"wrote {output}", err=True)


def _read_module(wasm: Path) -> bytes:
    """The bytes of the module --wasm names; a ManifestError unless it is a core module Envoy loads."""
    try:
        module = wasm.read_bytes()
    except OSError as error:
        raise ManifestError(f"--wasm {wasm}: cannot read it: {error.strerror or error}") from None
    problem = module_problem(module, f"--wasm {wasm}", "pass the .wasm file `pwtool build` wrote, for example "
                             f"dist/NAME.wasm; `pwtool inspect {wasm}` shows what Envoy needs")
    if problem is not None:
        raise ManifestError(problem)
    return module


def _is_oci_url(url: str) -> bool:
    """Whether Istio pulls ``url`` as an OCI image: scheme ``oci`` in any case, or no scheme at all."""
    scheme, sep, _ = url.partition("://")
    return not sep or scheme.lower() == "oci"


def _oci_reference(url: str) -> Reference | None:
    """The image an OCI --url names (parsed as `pwtool push` parses REF), or None for other URLs."""
    if not _is_oci_url(url):
        return None
    from pwtool.oci import ReferenceError, parse_reference

    try:
        return parse_reference(url.partition("://")[2] if "://" in url else url)
    except ReferenceError as error:
        raise ManifestError(f"--url {url!r}: {error}. Fix: pass oci:// and the reference `pwtool push` printed, "
                            "for example oci://ghcr.io/me/plugin:v1") from None


def _image_digest(module: bytes, fmt: str, manifest_type: str) -> str:
    from pwtool.oci import build_image

    try:
        return build_image(module, fmt, manifest_type).digest
    except ValueError as error:
        raise ManifestError(f"--wasm with --format {fmt} --manifest-type {manifest_type}: {error}") from None


def _passed(ctx: click.Context, name: str) -> bool:
    """Whether the user gave option ``name`` (on the command line or through its environment variable)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def _refuse_ignored_options(ctx: click.Context, *, kind: str, full: bool, url: str | None) -> None:
    """A usage error for an option `manifest envoy` would silently ignore in this combination."""
    needs = [
        ("upstream", "--upstream", not full, "--bootstrap (it routes the bootstrap's listener to that upstream)"),
        ("listen_port", "--listen-port", not full, "--bootstrap (it is the port of the bootstrap's listener)"),
        ("ecds_path", "--ecds-path", kind != "ecds" or not full,
         "--kind ecds --bootstrap (it is the ECDS file the bootstrap's filter watches)"),
        ("version_info", "--version-info", kind != "ecds", "--kind ecds (it is the ECDS response's version_info)"),
        ("no_singleton", "--no-singleton", kind != "service", "--kind service (it applies to a WasmService)"),
        ("sha256", "--sha256", url is None, "--url (it is the checksum Envoy checks a fetched module against; a "
                                            "--wasm module is read from disk unchecked)"),
        ("fetch_cluster", "--fetch-cluster", url is None, "--url (the cluster fetches a remote module; a --wasm "
                                                          "module is read from disk)"),
        ("fetch_retries", "--fetch-retries", url is None, "--url (it retries the fetch of a remote module; a --wasm "
                                                          "module is read from disk)"),
    ]
    for name, flag, ignored, what in needs:
        if ignored and _passed(ctx, name):
            raise click.UsageError(f"{flag} is only used with {what}. Fix: add the option it needs, or drop {flag}",
                                   ctx)


@click.group("manifest")
def command() -> None:
    """Render deployment manifests: Istio WasmPlugin or plain-Envoy configs."""


@command.command("istio")
@click.argument("plugin_dir", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--url", required=True, help="Module location: oci://HOST/REPO:TAG[@sha256:...], https://..., file://...")
@click.option("--sha256", "sha256", metavar="HEX",
              help="Checksum Istio verifies: the image manifest digest for oci:// URLs (printed by `pwtool push`), "
                   "the module's sha256 for http(s)/file URLs.")
@click.option("--wasm", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Compute --sha256 from this module (for oci:// URLs: the digest `pwtool push` gives it).")
@click.option("--format", "fmt", type=click.Choice(["compat", "oci", "cncf"]), default="compat", show_default=True,
              help="Image format assumed by --wasm with an oci:// URL.")
@click.option("--manifest-type", type=click.Choice(["oci", "docker"]), default="oci", show_default=True,
              help="Manifest flavour assumed by --wasm with an oci:// URL.")
@click.option("--name", help="metadata.name (default: the plugin name with _ as -).")
@click.option("-n", "--namespace", help="metadata.namespace.")
@click.option("--plugin-name", help="spec.pluginName, the root id Envoy runs (default: root_id in plugin.toml).")
@click.option("--root-id", hidden=True)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--phase", type=click.Choice(PHASES), help="Where in the filter chain: AUTHN, AUTHZ or STATS.")
@click.option("--priority", type=int, help="Order among WasmPlugins of the same phase (higher first).")
@click.option("--fail-strategy", type=click.Choice(FAIL_STRATEGIES), help="Behaviour on fatal plugin errors.")
@click.option("--selector", "selector", multiple=True, metavar="LABEL=VALUE",
              help="Workload label to match (spec.selector.matchLabels); repeatable.")
@click.option("--target-ref", "target_refs", multiple=True, metavar="[GROUP/]KIND/NAME",
              help="spec.targetRefs entry, e.g. Gateway/my-gateway; repeatable. Not with --selector.")
@click.option("--match-mode", type=click.Choice(["CLIENT", "SERVER", "CLIENT_AND_SERVER"]),
              help="Traffic direction (spec.match[].mode).")
@click.option("--match-port", "match_ports", multiple=True, type=click.IntRange(1, 65535),
              help="Destination port (spec.match[].ports); repeatable.")
@click.option("--pull-policy", type=click.Choice(PULL_POLICIES), help="spec.imagePullPolicy.")
@click.option("--pull-secret", help="spec.imagePullSecret: name of a docker-registry Secret.")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="VM environment variable; repeatable.")
@click.option("--host-env", "host_env", multiple=True, metavar="NAME",
              help="VM environment variable taken from the proxy's host; repeatable.")
@click.option("--type", "plugin_type", type=click.Choice(["HTTP", "NETWORK"]), help="spec.type.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here, not stdout (a leading # comment block in an existing file is kept).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def istio(plugin_dir: Path | None, url: str, sha256: str | None, wasm: Path | None, fmt: str, manifest_type: str,
          name: str | None, namespace: str | None, plugin_name: str | None, root_id: str | None,
          settings: tuple[str, ...], phase: str | None, priority: int | None, fail_strategy: str | None,
          selector: tuple[str, ...], target_refs: tuple[str, ...], match_mode: str | None,
          match_ports: tuple[int, ...], pull_policy: str | None, pull_secret: str | None, env: tuple[str, ...],
          host_env: tuple[str, ...], plugin_type: str | None, output: Path | None, as_json: bool) -> None:
    """Render an Istio WasmPlugin for PLUGIN_DIR, validated against the CRD schema and its CEL rules.

    pluginConfig is the plugin's [config] table from plugin.toml, merged with --set flags.

    \b
    Example:
      pwtool manifest istio plugins/hello --url oci://ghcr.io/me/hello:v1 \\
          --sha256 <digest from pwtool push> --selector app=web --phase STATS
    """
    try:
        info = _plugin(plugin_dir, plugin_name, root_id)
        _check_output(output, info)
        if sha256 and wasm:
            raise ManifestError("pass --sha256 or --wasm, not both")
        reference = _oci_reference(url)
        pinned = str(reference.digest) if reference is not None and (reference.digest or "").startswith(
            "sha256:") else None
        if wasm is not None:
            module = _read_module(wasm)
            if reference is not None:
                sha256 = _image_digest(module, fmt, manifest_type)
            else:
                sha256 = hashlib.sha256(module).hexdigest()
        elif sha256 is None and pinned is not None:
            sha256 = pinned
        if sha256 is not None:
            sha256 = normalize_sha256(sha256)
            if pinned is not None and normalize_sha256(pinned) != sha256:
                source = (f"--wasm {wasm} packed as --format {fmt} --manifest-type {manifest_type} is image"
                          if wasm is not None else "--sha256 is")
                raise ManifestError(f"--url pins image {pinned}, but {source} sha256:{sha256}; Istio would refuse "
                                    "the pulled image as a checksum mismatch. Fix: pass the digest `pwtool push` "
                                    "printed in both places, or drop --sha256/--wasm and let the URL's digest serve")
        match: list[dict[str, Any]] | None = None
        if match_mode or match_ports:
            entry: dict[str, Any] = {}
            if match_mode:
                entry["mode"] = match_mode
            if match_ports:
                entry["ports"] = [{"number": p} for p in match_ports]
            match = [entry]
        env_list = [{"name": k, "value": v} for k, v in _pairs(env, "--env").items()]
        env_list += [{"name": k, "valueFrom": "HOST"} for k in host_env]
        doc = render_wasmplugin(
            name=name or resource_name(info.name), namespace=namespace, url=url, sha256=sha256,
            plugin_name=plugin_name or info.root_id, plugin_config=merge_settings(info.config, settings),
            phase=phase, priority=priority, fail_strategy=fail_strategy,
            selector=_selector(selector) if selector else None,
            target_refs=[parse_target_ref(t) for t in target_refs] or None, match=match,
            image_pull_policy=pull_policy, image_pull_secret=pull_secret, env=env_list or None,
            plugin_type=plugin_type,
        )
    except ManifestError as exc:
        fail(str(exc), as_json)
    if sha256 is None and not _is_oci_url(url):
        click.echo(f"warning: no --sha256 for {url}; Istio will load whatever that URL serves", err=True)
    config_size = len(json.dumps(doc["spec"].get("pluginConfig", {})))
    if config_size > _LARGE_CONFIG:
        click.echo(f"warning: pluginConfig is {config_size / 2**20:.1f} MiB; Kubernetes refuses objects over "
                   "about 1.5 MiB. Fix: move large data out of the configuration (for example into the module, "
                   "or fetch it with an HTTP callout)", err=True)
    _emit(json.dumps(doc, indent=2) + "\n" if as_json else to_yaml(doc), output, as_json, keep_header=not as_json)


@command.command("envoy")
@click.argument("plugin_dir", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--kind", type=click.Choice(["filter", "ecds", "service"]), default="filter", show_default=True,
              help="filter: an http_filters entry; ecds: a TypedExtensionConfig in a file-based ECDS "
                   "DiscoveryResponse; service: a bootstrap WasmService (singleton) entry.")
@click.option("--wasm", type=click.Path(dir_okay=False, path_type=Path), help="Local module file Envoy loads.")
@click.option("--url", help="Remote module (http:// or https://), fetched by Envoy through --fetch-cluster.")
@click.option("--sha256", metavar="HEX", help="sha256 of the remote module (required with --url).")
@click.option("--fetch-cluster", default="wasm_fetch", show_default=True, help="Cluster that fetches --url.")
@click.option("--fetch-retries", type=click.IntRange(0, 100), default=5, show_default=True,
              help="Retries of the remote fetch.")
@click.option("--plugin-name", help="PluginConfig name (default: name in plugin.toml).")
@click.option("--root-id", help="Root id (default: root_id in plugin.toml).")
@click.option("--vm-id", help="VM id; plugins with the same vm_id share data and queues (default: plugin name).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--runtime", type=click.Choice(RUNTIMES), default="v8", show_default=True,
              help="Wasm runtime: v8 is in Envoy's release builds and Istio's proxy; wamr and wasmtime need an "
                   "Envoy built with them.")
@click.option("--failure-policy", type=click.Choice(FAILURE_POLICIES), help="What Envoy does when the VM fails.")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="VM environment variable; repeatable.")
@click.option("--host-env", "host_env", multiple=True, metavar="NAME", help="Pass a host env var to the VM.")
@click.option("--no-singleton", is_flag=True, help="With --kind service: one VM per worker, not one.")
@click.option("--ecds-path", type=click.Path(path_type=Path),
              help="With --kind ecds and --bootstrap: path of the ECDS file the filter watches.")
@click.option("--version-info", help="With --kind ecds: version_info of the DiscoveryResponse.")
@click.option("--bootstrap", "full", is_flag=True,
              help="Wrap the result in a complete minimal bootstrap (listener on 127.0.0.1).")
@click.option("--listen-port", type=click.IntRange(1, 65535), default=10000, show_default=True,
              help="With --bootstrap: listener port.")
@click.option("--upstream", metavar="HOST:PORT", help="With --bootstrap: route to this upstream (default: direct 200).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not stdout.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def envoy(plugin_dir: Path | None, kind: str, wasm: Path | None, url: str | None, sha256: str | None,
          fetch_cluster: str, fetch_retries: int, plugin_name: str | None, root_id: str | None, vm_id: str | None,
          settings: tuple[str, ...], runtime: str, failure_policy: str | None, env: tuple[str, ...],
          host_env: tuple[str, ...], no_singleton: bool, ecds_path: Path | None, version_info: str | None,
          full: bool, listen_port: int, upstream: str | None, output: Path | None, as_json: bool) -> None:
    """Render plain-Envoy config running PLUGIN_DIR's module (local --wasm or remote --url).

    \b
    Examples:
      pwtool manifest envoy plugins/hello --wasm dist/hello.wasm
      pwtool manifest envoy plugins/hello --url https://example.com/hello.wasm --sha256 HEX
      pwtool manifest envoy plugins/hello --kind ecds --wasm dist/hello.wasm -o ecds/hello.yaml
      pwtool manifest envoy plugins/shared_queue --kind service --root-id consumer --wasm dist/shared_queue.wasm
    """
    _refuse_ignored_options(click.get_current_context(), kind=kind, full=full, url=url)
    if kind == "ecds" and full and ecds_path is None:
        raise click.UsageError("--kind ecds --bootstrap needs --ecds-path (where the ECDS file lives)")
    try:
        info = _plugin(plugin_dir, plugin_name, root_id)
        _check_output(output, info)
        if wasm is not None:
            wasm = wasm.resolve()
            if not wasm.is_file():
                raise ManifestError(f"{wasm} does not exist; build it first with `pwtool build`")
            _read_module(wasm)
        pc = plugin_config(
            name=info.name, root_id=info.root_id, config=merge_settings(info.config, settings), wasm_file=wasm,
            url=url, sha256=sha256, vm_id=vm_id, runtime=runtime, failure_policy=failure_policy,
            env=_pairs(env, "--env") or None, host_env=list(host_env) or None, fetch_cluster=fetch_cluster,
            fetch_retries=fetch_retries,
        )
        clusters = [fetch_cluster_cfg(url, fetch_cluster)] if url else []
        result: Any
        if kind == "filter":
            result = http_filter(pc)
            if full:
                result = bootstrap(http_filters=[result], clusters=clusters, listen_port=listen_port,
                                   upstream=upstream)
        elif kind == "ecds":
            result = ecds_resource(pc, version=version_info)
            if full:
                assert ecds_path is not None
                result = bootstrap(http_filters=[ecds_filter(info.name, ecds_path.resolve())], clusters=clusters,
                                   listen_port=listen_port, upstream=upstream)
        else:
            result = wasm_service(pc, singleton=not no_singleton)
            if full:
                result = bootstrap(bootstrap_extensions=[result], clusters=clusters, listen_port=listen_port,
                                   upstream=upstream)
    except ManifestError as exc:
        fail(str(exc), as_json)
    text = json.dumps(result, indent=2) + "\n" if as_json else yaml.safe_dump(result, sort_keys=False)
    _emit(text, output, as_json)


fetch_cluster_cfg = fetch_cluster
