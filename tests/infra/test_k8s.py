"""The Kubernetes manifests (infra/k8s): valid against the Kubernetes and Dask operator schemas,
wired to each other (image, names, ports, variables), and free of secret values."""

from __future__ import annotations

import datetime
import functools
import os
import re
import stat
import subprocess
import sys
import zoneinfo
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
CRDS = Path(__file__).resolve().parent / "crds"
EXAMPLE_SECRETS = "secrets.example.yaml"
NOT_APPLIED = {EXAMPLE_SECRETS, "reprocess-job.yaml"}
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]
DASK_KINDS = {"DaskCluster", "DaskAutoscaler"}
OPERATOR_VARIABLES = {"DASK_WORKER_NAME", "DASK_SCHEDULER_ADDRESS"}


def manifest_files() -> list[Path]:
    """Every manifest file under infra/k8s except the kustomization."""
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def documents(path: Path) -> list[dict]:
    """The non-empty YAML documents of ``path`` (parsed once; do not modify them)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(path.read_text(), Loader=loader) if d]


def all_documents(include_example: bool = False) -> list[tuple[str, dict]]:
    """(file name, document) of every manifest, the example Secrets only when asked."""
    return [
        (path.name, doc)
        for path in manifest_files()
        if include_example or path.name != EXAMPLE_SECRETS
        for doc in documents(path)
    ]


def by_kind(kind: str) -> list[dict]:
    """The manifests (example Secrets excluded) of ``kind``."""
    return [doc for _, doc in all_documents() if doc["kind"] == kind]


def pod_specs() -> list[tuple[str, dict, dict]]:
    """(where, pod labels, pod spec) of every pod template in the manifests."""
    found = []
    for name, doc in all_documents():
        spec = doc.get("spec", {})
        where = f"{name}:{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "DaskCluster":
            cluster = doc["metadata"]["name"]
            for role in ("scheduler", "worker"):
                labels = {"dask.org/cluster-name": cluster, "dask.org/component": role}
                found.append((f"{where}/{role}", labels, spec[role]["spec"]))
        elif doc["kind"] in ("Deployment", "Job"):
            template = spec["template"]
            found.append((where, template["metadata"].get("labels", {}), template["spec"]))
        elif doc["kind"] == "CronJob":
            template = spec["jobTemplate"]["spec"]["template"]
            found.append((where, template["metadata"].get("labels", {}), template["spec"]))
    return found


def containers() -> list[tuple[str, dict]]:
    """(where, container) of every container in the manifests."""
    return [
        (f"{where}/{c['name']}", c)
        for where, _, spec in pod_specs()
        for c in spec.get("containers", []) + spec.get("initContainers", [])
    ]


def config_data() -> dict[str, str]:
    """The keys and values of the anpr-config ConfigMap."""
    (config,) = [c for c in by_kind("ConfigMap") if c["metadata"]["name"] == "anpr-config"]
    return config["data"]


def secret_keys() -> dict[str, set[str]]:
    """The keys of each Secret the example file describes, by Secret name."""
    return {
        doc["metadata"]["name"]: set(doc.get("stringData", {})) | set(doc.get("data", {}))
        for doc in documents(K8S / EXAMPLE_SECRETS)
    }


def test_every_manifest_parses_and_names_its_kind():
    assert manifest_files()
    for name, doc in all_documents(include_example=True):
        assert {"apiVersion", "kind", "metadata"} <= set(doc), name
        assert doc["metadata"].get("name"), name
    assert yaml.safe_load((K8S / "kustomization.yaml").read_text())["kind"] == "Kustomization"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_kinds_validate_strictly_against_kubernetes_schemas(version):
    checked = set()
    for name, doc in all_documents(include_example=True):
        if doc["kind"] in DASK_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {error.message}")
        checked.add(doc["kind"])
    assert {"Namespace", "ConfigMap", "Deployment", "Service", "CronJob", "Job", "Secret"} <= (
        checked
    )


def crd_schema(kind: str) -> dict:
    """The openAPIV3Schema of ``kind`` (v1) from the operator's CustomResourceDefinition."""
    (crd,) = documents(CRDS / f"{kind.lower()}.yaml")
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def test_dask_resources_validate_against_the_operator_crds():
    for kind in DASK_KINDS:
        resources = by_kind(kind)
        assert resources, f"no {kind}"
        for doc in resources:
            assert doc["apiVersion"] == "kubernetes.dask.org/v1"
            jsonschema.Draft7Validator(crd_schema(kind)).validate(doc)


def test_a_broken_dask_cluster_is_refused_by_the_crd_schema():
    (cluster,) = by_kind("DaskCluster")
    broken = {**cluster, "spec": {**cluster["spec"], "worker": {"replicas": "two"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(crd_schema("DaskCluster")).validate(broken)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_dask_cluster_pods_and_service_validate_strictly(version):
    (cluster,) = by_kind("DaskCluster")
    name = cluster["metadata"]["name"]
    for role in ("scheduler", "worker"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-{role}"}}
        kubernetes_validate.validate({**pod, "spec": cluster["spec"][role]["spec"]}, version, True)
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{name}-scheduler"}}
    spec = cluster["spec"]["scheduler"]["service"]
    kubernetes_validate.validate({**service, "spec": spec}, version, strict=True)


def test_the_autoscaler_drives_the_cluster_within_its_bounds():
    (cluster,) = by_kind("DaskCluster")
    (autoscaler,) = by_kind("DaskAutoscaler")
    spec = autoscaler["spec"]
    assert spec["cluster"] == cluster["metadata"]["name"]
    assert 1 <= spec["minimum"] <= cluster["spec"]["worker"]["replicas"] <= spec["maximum"]


def test_every_pod_has_resources_and_runs_as_non_root():
    for where, container in containers():
        resources = container.get("resources", {})
        assert resources.get("requests", {}).get("memory"), where
        assert resources.get("limits", {}).get("memory"), where
    for where, _, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, where


def test_all_containers_run_the_one_project_image():
    images = {c["image"] for _, c in containers()}
    assert len(images) == 1, images
    (image,) = images
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert [i["name"] for i in kustomization["images"]] == [image.rsplit(":", 1)[0]]


def test_kustomization_applies_everything_but_the_example_secrets_and_the_one_off_job():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in manifest_files()} - NOT_APPLIED
    assert kustomization["namespace"] == "anpr"
    for name, doc in all_documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "anpr", name


def scheduler_address() -> tuple[str, int]:
    """(service name, comm port) of the DaskCluster's scheduler, as the operator names it."""
    (cluster,) = by_kind("DaskCluster")
    service = cluster["spec"]["scheduler"]["service"]
    (port,) = [p["port"] for p in service["ports"] if p["name"] == "tcp-comm"]
    return f"{cluster['metadata']['name']}-scheduler", port


def test_jobs_reach_the_scheduler_at_its_service_name_and_port():
    name, port = scheduler_address()
    clients = [c for w, c in containers() if "Job" in w]
    assert len(clients) == 2
    for container in clients:
        words = " ".join(container.get("command", []) + container.get("args", []))
        assert f"--scheduler tcp://{name}:{port}" in words


def test_services_target_ports_that_their_pods_open():
    services = [s["spec"] for s in by_kind("Service")]
    (cluster,) = by_kind("DaskCluster")
    services.append(cluster["spec"]["scheduler"]["service"])
    for spec in services:
        pods = [
            (labels, pod)
            for _, labels, pod in pod_specs()
            if spec["selector"].items() <= labels.items()
        ]
        assert len(pods) == 1, spec["selector"]
        opened = {
            (p.get("name"), p["containerPort"])
            for c in pods[0][1]["containers"]
            for p in c.get("ports", [])
        }
        for port in spec["ports"]:
            assert any(port["targetPort"] in pair for pair in opened), port


def test_clients_find_mlflow_at_its_service_name_and_port():
    (service,) = [s for s in by_kind("Service") if s["metadata"]["name"] == "mlflow"]
    (port,) = [p["port"] for p in service["spec"]["ports"]]
    assert config_data()["MLFLOW_TRACKING_URI"] == f"http://mlflow:{port}"
    (deployment,) = by_kind("Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--port") + 1] == str(port)
    assert "--allowed-hosts" in args
    allowed = config_data()["MLFLOW_ALLOWED_HOSTS"].split(",")
    assert {"mlflow", "mlflow:*"} <= set(allowed)


def defined_variables(container: dict) -> set[str]:
    """Names of the environment variables ``container`` gets (env, envFrom of the ConfigMap
    and the example Secrets, and those the Dask operator injects)."""
    names = {e["name"] for e in container.get("env", [])} | OPERATOR_VARIABLES
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] == "anpr-config"
            names |= set(config_data())
        if "secretRef" in source:
            names |= secret_keys()[source["secretRef"]["name"]]
    return names


def test_every_variable_a_container_uses_is_defined():
    for where, container in containers():
        words = " ".join(container.get("command", []) + container.get("args", []))
        used = set(re.findall(r"\$\(([A-Z_][A-Z0-9_]*)\)", words))
        used |= set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)(?![A-Z0-9_]|:-)", words)) - {"DAY"}
        assert used <= defined_variables(container), (where, used - defined_variables(container))


def test_secrets_are_only_referenced():
    referenced = set()
    for _, container in containers():
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                referenced.add(source["secretRef"]["name"])
        for env in container.get("env", []):
            if "value" in env:
                assert not re.search(r"(SECRET|PASSWORD|TOKEN|KEY)", env["name"]), env["name"]
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secret_keys()[ref["name"]]
                referenced.add(ref["name"])
    assert referenced == set(secret_keys())
    assert not by_kind("Secret")


def test_no_secret_values_in_any_file():
    for path in [*manifest_files(), K8S / "kustomization.yaml"]:
        text = path.read_text()
        assert not re.search(r"\bAKIA[0-9A-Z]{16}\b", text), path.name
        assert not re.search(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])", text), path
        for doc in documents(path):
            assert not (doc.get("data") and doc["kind"] == "Secret") or path.name == EXAMPLE_SECRETS
            if path.name != EXAMPLE_SECRETS:
                assert "stringData" not in doc, path.name
    for doc in documents(K8S / EXAMPLE_SECRETS):
        assert "data" not in doc
        for value in doc["stringData"].values():
            assert "REPLACE-WITH" in value, value


def cronjob_container() -> tuple[dict, dict]:
    """(the tickets CronJob, its container)."""
    (cronjob,) = by_kind("CronJob")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return cronjob, container


def test_nightly_tickets_run_in_the_agency_time_zone():
    cronjob, _ = cronjob_container()
    assert cronjob["spec"]["timeZone"] == config_data()["ANPR_TIMEZONE"]
    zoneinfo.ZoneInfo(cronjob["spec"]["timeZone"])
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def run_tickets_command(tmp_path: Path, **env: str) -> list[str]:
    """The arguments `anpr` gets when the CronJob's shell command runs here with the
    ConfigMap's variables plus ``env``, this Python, and a stand-in `anpr` printing them."""
    _, container = cronjob_container()
    stand_in = tmp_path / "anpr"
    stand_in.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    path = f"{tmp_path}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"
    done = subprocess.run(
        container["command"] + container["args"],
        env={**config_data(), "TZ": "UTC", "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[1:]


def test_the_tickets_command_asks_for_yesterday_in_the_agency_time_zone(tmp_path):
    zone = "Pacific/Kiritimati"  # UTC+14: its yesterday differs from UTC's most of the day

    def yesterday() -> str:
        now = datetime.datetime.now(zoneinfo.ZoneInfo(zone))
        return str(now.date() - datetime.timedelta(days=1))

    before = yesterday()
    argv = run_tickets_command(tmp_path, ANPR_TIMEZONE=zone)
    assert argv[:2] == ["tickets", "--date"]
    assert argv[2] in {before, yesterday()}
    assert argv[argv.index("--timezone") + 1] == zone
    urls = [config_data()[k] for k in ("ANPR_EVENTS_URL", "ANPR_READS_URL", "ANPR_TICKETS_URL")]
    assert [a for a in argv if a.startswith("s3://")] == urls


def test_a_given_date_overrides_yesterday_for_a_rerun(tmp_path):
    argv = run_tickets_command(tmp_path, ANPR_TICKETS_DATE="2026-03-08")
    assert argv[:3] == ["tickets", "--date", "2026-03-08"]


def anpr_argv(container: dict) -> list[str]:
    """The `anpr` arguments of a Job container with $(VAR) and $VAR taken from the ConfigMap
    (the tickets date fixed to 2026-11-24)."""
    if container.get("command") == ["sh", "-c"]:
        script = container["args"][0]
        words = script[script.index("exec anpr ") + len("exec anpr ") :].split()
        words = [w.strip('"').replace("$DAY", "2026-11-24") for w in words]
    else:
        words = container["args"][1:]
    values = config_data()
    return [re.sub(r"\$\(?([A-Z_]+)\)?", lambda m: values[m.group(1)], w) for w in words]


@pytest.mark.parametrize("command", ["reprocess", "tickets"])
def test_the_jobs_arguments_parse_with_the_anpr_cli(command):
    from anpr_jobs import cli

    parser = cli.build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # noqa: SLF001
    if command not in subcommands:
        pytest.skip(f"`anpr {command}` is not in this checkout's CLI yet")
    (container,) = [c for w, c in containers() if f"anpr-{command}" in w]
    argv = anpr_argv(container)
    assert argv[0] == command
    args = parser.parse_args(argv)
    assert args.command == command
