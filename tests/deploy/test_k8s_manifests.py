"""examples/k8s: the fields that matter, checked on the parsed manifests; the kustomize output when
kubectl is here; the Kubernetes schemas when kubernetes-validate is installed."""

from __future__ import annotations

import posixpath
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from astra_sidecar.cli import main as astra
from tests.deploy.repo_files import K8S, default_command, load_table, load_yaml, parse_containerfile

SECRET = "astra-provider-keys"
TABLE_FILE = "routing-table.json"


def _pod(path: Path) -> dict[str, Any]:
    spec: dict[str, Any] = load_yaml(path)["spec"]["template"]["spec"]
    return spec


def _named(containers: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(c for c in containers if c["name"] == name)


def _sidecar(path: Path) -> dict[str, Any]:
    pod = _pod(path)
    return _named(pod.get("initContainers") or pod["containers"], "astra")


def _credential_env_names() -> set[str]:
    table = load_table()
    names = {c["credentials"]["env"] for c in table["clusters"].values() if c["credentials"]["mode"] == "env"}
    token = table["settings"]["inboundTokenEnv"]
    return names | ({token} if token else set())


MANIFESTS = [K8S / "deployment.yaml", K8S / "sidecar-legacy.yaml"]


def test_the_sidecar_is_a_native_sidecar_init_container() -> None:
    pod = _pod(K8S / "deployment.yaml")
    assert [c["name"] for c in pod["initContainers"]] == ["astra"]
    assert pod["initContainers"][0]["restartPolicy"] == "Always"
    assert [c["name"] for c in pod["containers"]] == ["app"]


def test_the_legacy_variant_runs_the_sidecar_first_as_a_plain_container() -> None:
    pod = _pod(K8S / "sidecar-legacy.yaml")
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["astra", "app"]
    hooks = pod["containers"][0]["lifecycle"]
    assert "/healthz" in hooks["postStart"]["exec"]["command"][-1]
    assert "time.sleep(10)" in hooks["preStop"]["exec"]["command"][-1]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_probes_hit_healthz_and_readyz_on_the_served_port(manifest: Path) -> None:
    sidecar = _sidecar(manifest)
    port = sidecar["ports"][0]["containerPort"]
    assert port == 8080 and sidecar["args"][-1] == str(port)
    probes = {kind: sidecar[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {
        "startupProbe": {"path": "/healthz", "port": port},
        "livenessProbe": {"path": "/healthz", "port": port},
        "readinessProbe": {"path": "/readyz", "port": port},
    }


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_every_container_is_locked_down(manifest: Path) -> None:
    pod = _pod(manifest)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    for container in pod.get("initContainers", []) + pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        assert "memory" in container["resources"]["limits"]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_the_sidecar_runs_as_the_image_user(manifest: Path) -> None:
    user = parse_containerfile()[1][-1].last("USER").args
    security = _sidecar(manifest)["securityContext"]
    assert f"{security['runAsUser']}:{security['runAsGroup']}" == user


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_the_table_is_mounted_where_the_image_command_reads_it(manifest: Path) -> None:
    sidecar, pod = _sidecar(manifest), _pod(manifest)
    served = default_command()[2]
    assert sidecar["args"] == default_command()[1:], "the manifest spells out the image's own command"
    mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    table_mount = mounts["astra-table"]
    assert (table_mount["mountPath"], table_mount["readOnly"]) == (posixpath.dirname(served), True)
    assert "subPath" not in table_mount, "a subPath mount never sees ConfigMap updates"
    assert volumes["astra-table"]["configMap"]["name"] == "astra-routing-table"
    assert posixpath.basename(served) == TABLE_FILE
    assert mounts["astra-tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["astra-tmp"]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_grace_period_outlasts_the_drain(manifest: Path) -> None:
    drain_s = load_table()["settings"]["drainGraceMs"] / 1000
    pod = _pod(manifest)
    pre_stop_s = 10 if "lifecycle" in _sidecar(manifest) else 0
    assert pod["terminationGracePeriodSeconds"] > pre_stop_s + drain_s
    assert "drainGraceMs" in manifest.read_text(), "a comment ties the two numbers"


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_credentials_come_from_the_secret(manifest: Path) -> None:
    env = {e["name"]: e for e in _sidecar(manifest)["env"]}
    needed = _credential_env_names()
    assert needed == {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ASTRA_TOKEN"}
    assert set(env) == needed
    for name in needed:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": name}
    app_env = {e["name"]: e for e in _named(_pod(manifest)["containers"], "app")["env"]}
    assert app_env["OPENAI_BASE_URL"]["value"] == "http://127.0.0.1:8080/v1"
    assert app_env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "ASTRA_TOKEN"}


def test_the_example_secret_has_every_key_and_stays_out_of_the_kustomization() -> None:
    secret = load_yaml(K8S / "secret.example.yaml")
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", SECRET)
    assert set(secret["stringData"]) == _credential_env_names()
    assert "secret.example.yaml" not in load_yaml(K8S / "kustomization.yaml")["resources"]


def test_the_kustomization_generates_the_configmap_from_the_table() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert kustomization["resources"] == ["deployment.yaml"]
    assert kustomization["configMapGenerator"] == [{"name": "astra-routing-table", "files": [TABLE_FILE]}]
    assert "disableNameSuffixHash" not in str(kustomization), "the hash suffix is what rolls the pods"


def test_the_committed_table_is_what_the_example_config_compiles_to(capsys: pytest.CaptureFixture[str]) -> None:
    status = astra(["compile", str(K8S / "astra.yml"), "-o", str(K8S / TABLE_FILE), "--check"])
    assert status == 0, capsys.readouterr().err
    assert astra(["lint", "--strict", str(K8S / "astra.yml")]) == 0


def _kustomize() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    done = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_kustomize_names_the_configmap_by_content_and_points_the_deployment_at_it() -> None:
    docs = {d["kind"]: d for d in _kustomize()}
    configmap, deployment = docs["ConfigMap"], docs["Deployment"]
    name = configmap["metadata"]["name"]
    assert name.startswith("astra-routing-table-") and len(name) > len("astra-routing-table-")
    assert configmap["data"] == {TABLE_FILE: (K8S / TABLE_FILE).read_text()}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["astra-table"]["configMap"]["name"] == name


def _kubernetes_validate() -> Any:
    return pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")


@pytest.mark.parametrize(("manifest", "version"), [
    ("deployment.yaml", "1.29.0"), ("sidecar-legacy.yaml", "1.27.0"), ("secret.example.yaml", "1.27.0"),
])
def test_manifests_match_the_kubernetes_schemas(manifest: str, version: str) -> None:
    validator = _kubernetes_validate()
    for document in yaml.safe_load_all((K8S / manifest).read_text()):
        validator.validate(document, version, strict=True)


def test_native_sidecars_are_refused_by_the_schema_of_older_kubernetes() -> None:
    """The control: the validator really checks fields (restartPolicy on init containers is 1.28+)."""
    validator = _kubernetes_validate()
    with pytest.raises(validator.ValidationError, match="restartPolicy"):
        validator.validate(load_yaml(K8S / "deployment.yaml"), "1.27.0", strict=True)


def test_the_kustomize_output_matches_the_kubernetes_schemas() -> None:
    validator = _kubernetes_validate()
    for document in _kustomize():
        validator.validate(document, "1.29.0", strict=True)


# --- the fleet: three replicas, one Redis (examples/k8s/fleet) ----------------------------------------

FLEET = K8S / "fleet"


def test_the_fleet_runs_three_replicas_and_one_redis_with_its_service() -> None:
    assert load_yaml(FLEET / "deployment.yaml")["spec"]["replicas"] == 3
    redis = {d["kind"]: d for d in yaml.safe_load_all((FLEET / "redis.yaml").read_text())}
    assert redis["Deployment"]["spec"]["replicas"] == 1
    assert redis["Service"]["metadata"]["name"] == "astra-redis"
    assert redis["Service"]["spec"]["ports"][0]["port"] == 6379


def test_the_fleet_table_shares_state_through_the_redis_url_of_the_secret() -> None:
    table = load_table(FLEET / TABLE_FILE)
    assert table["settings"]["state"]["redis"]["urlEnv"] == "ASTRA_REDIS_URL"
    assert all(c["breaker"].get("shared") for c in table["clusters"].values())
    assert len(table["agents"]["assistant"]["pools"]) == 1
    env = {e["name"]: e for e in _sidecar(FLEET / "deployment.yaml")["env"]}
    assert env["ASTRA_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "astra-redis", "key": "ASTRA_REDIS_URL"}
    names = {c["credentials"]["env"] for c in table["clusters"].values() if c["credentials"]["mode"] == "env"}
    needed = names | {table["settings"]["inboundTokenEnv"]}
    assert needed == {"OPENAI_API_KEY", "OPENAI_API_KEY_B", "ANTHROPIC_API_KEY", "ASTRA_TOKEN"}
    for name in needed:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": name}
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all((FLEET / "secret.example.yaml").read_text())}
    assert set(secrets[SECRET]["stringData"]) == needed
    assert set(secrets["astra-redis"]["stringData"]) == {"ASTRA_REDIS_URL"}


def test_the_fleet_kustomization_applies_the_app_and_redis_but_no_secret() -> None:
    kustomization = load_yaml(FLEET / "kustomization.yaml")
    assert kustomization["resources"] == ["deployment.yaml", "redis.yaml"]
    assert kustomization["configMapGenerator"] == [{"name": "astra-routing-table", "files": [TABLE_FILE]}]


def test_the_committed_fleet_table_is_what_its_config_compiles_to(capsys: pytest.CaptureFixture[str]) -> None:
    status = astra(["compile", str(FLEET / "astra.yml"), "-o", str(FLEET / TABLE_FILE), "--check"])
    assert status == 0, capsys.readouterr().err
    assert astra(["lint", "--strict", str(FLEET / "astra.yml")]) == 0


def test_the_fleet_kustomize_output_matches_the_kubernetes_schemas() -> None:
    validator = _kubernetes_validate()
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    done = subprocess.run([kubectl, "kustomize", str(FLEET)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert sorted(d["kind"] for d in documents) == ["ConfigMap", "Deployment", "Deployment", "Service"]
    for document in [*documents, *yaml.safe_load_all((FLEET / "secret.example.yaml").read_text())]:
        validator.validate(document, "1.29.0", strict=True)
