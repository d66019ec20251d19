"""k8s/: every overlay renders with kustomize and validates offline against the Kubernetes schemas;
the container commands are the package's real CLI; the env vars set are ones something reads."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl (with built-in kustomize) is not installed"
)

# Read by third-party code in the pods, not by ours: torchrun/torch.distributed, Accelerate, MLflow,
# Hugging Face, NCCL, OpenMP.
THIRD_PARTY = re.compile(r"^(MLFLOW_|HF_|TRANSFORMERS_|ACCELERATE_|NCCL_|OMP_|TORCH|PET_)")
# Set by Kubernetes itself (Indexed Jobs).
KUBERNETES = {"JOB_COMPLETION_INDEX"}


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    assert found, f"{name} is missing: install the dev dependencies (pip install -e '.[dev]')"
    return found


def _render(target: Path) -> list[dict]:
    out = subprocess.run([KUBECTL, "kustomize", str(target)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    if KUBECTL is None:
        pytest.skip("kubectl (with built-in kustomize) is not installed")
    return {name: _render(K8S / "overlays" / name) for name in OVERLAYS}


def _containers(docs: list[dict]):
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            yield doc, c


def _argv(container: dict) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def _substitute(argv: list[str]) -> list[str]:
    """Kubelet's $(VAR) expansion with placeholder values (paths, names, ints all parse)."""
    return [
        re.sub(
            r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
            lambda m: (
                "1"
                if "INDEX" in m[1] or "NODES" in m[1]
                else ("http://h:5000" if m[1].endswith("URI") else f"/x/{m[1].lower()}")
            ),
            a,
        )
        for a in argv
    ]


def _validate(tmp_path: Path, name: str, docs: list[dict]) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    out = subprocess.run([_tool("kubernetes-validate"), "--strict", str(path)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed" in out.stdout and "fail" not in out.stdout.lower(), out.stdout


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_strict(rendered, overlay, tmp_path):
    docs = rendered[overlay]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Job", "indextts-preprocess") in kinds and ("Job", "indextts-train") in kinds
    assert ("Deployment", "indextts-mlflow") in kinds and ("Service", "indextts-mlflow") in kinds
    for doc in docs:  # one file per document: a failure names its resource
        _validate(tmp_path, f"{doc['kind']}-{doc['metadata']['name']}".lower(), [doc])


@needs_kubectl
def test_postgres_component_and_secret_template_validate(tmp_path):
    kust = tmp_path / "with-postgres"
    kust.mkdir()
    (kust / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / "overlays" / "single-node", kust)],
        "components": [os.path.relpath(K8S / "components" / "mlflow-postgres", kust)],
    }))  # fmt: skip
    docs = _render(kust)
    mlflow = next(d for d in docs if d["kind"] == "Deployment")
    env = mlflow["spec"]["template"]["spec"]["containers"][0]["env"]
    uri = next(e for e in env if e["name"] == "MLFLOW_BACKEND_STORE_URI")
    assert uri["valueFrom"]["secretKeyRef"]["name"] == "indextts-mlflow-db"
    _validate(tmp_path, "postgres", docs)
    secrets = list(yaml.safe_load_all((K8S / "base" / "secret.example.yaml").read_text()))
    assert {s["metadata"]["name"] for s in secrets} == {
        "indextts-mlflow-credentials",
        "indextts-mlflow-db",
        "indextts-serve-api-key",
    }
    _validate(tmp_path, "secrets", secrets)


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_distributed_jobs_topology(rendered, overlay):
    docs = rendered[overlay]
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("indextts-config")
    )
    nnodes = int(config["data"]["NNODES"])
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for job in (d for d in docs if d["kind"] == "Job"):
        name, spec = job["metadata"]["name"], job["spec"]
        pod = spec["template"]["spec"]
        assert spec["completionMode"] == "Indexed"
        assert spec["completions"] == spec["parallelism"] == nnodes, name
        svc = services[pod["subdomain"]]
        assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
        assert svc["spec"]["selector"] == {"batch.kubernetes.io/job-name": name}
        assert pod["restartPolicy"] == "Never" and spec["backoffLimit"] >= 3
        rules = spec["podFailurePolicy"]["rules"]
        assert any(
            r["action"] == "Ignore" and r["onPodConditions"][0]["type"] == "DisruptionTarget" for r in rules
        )
        argv = _argv(pod["containers"][0])
        t = argv.index("torchrun")
        assert "--rdzv-backend=c10d" in argv and "--nnodes=$(NNODES)" in argv
        assert f"--rdzv-endpoint={name}-0.{pod['subdomain']}:29400" in argv
        assert "--node-rank=$(JOB_COMPLETION_INDEX)" in argv and t >= 0
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory" and shm["emptyDir"]["sizeLimit"]
        assert any(m["mountPath"] == "/dev/shm" for m in pod["containers"][0]["volumeMounts"])
    train = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "indextts-train")
    c = train["spec"]["template"]["spec"]["containers"][0]
    assert int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert "--nproc-per-node=gpu" in c["args"] and "--resume" in c["args"]
    env = {e["name"]: e for e in c["env"]}
    assert env["ACCELERATE_USE_DEEPSPEED"]["value"] == "true"
    assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"]["value"] == "2"
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[key]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert "MLFLOW_TRACKING_URI" in config["data"]
    assert "--mlflow-uri=$(MLFLOW_TRACKING_URI)" in c["args"]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_speech_endpoint(rendered, overlay):
    """Deployment + Service + HPA + PDB for `serve`: probes on its endpoints, a GPU, the model by
    alias (followed), SIGTERM's drain inside the grace period, every selector matching the pods."""
    docs = {(d["kind"], d["metadata"]["name"]): d for d in rendered[overlay]}
    deploy = docs["Deployment", "indextts-serve"]
    pod = deploy["spec"]["template"]
    labels = pod["metadata"]["labels"]
    c = pod["spec"]["containers"][0]
    assert c["command"] == ["indextts-dist"] and c["args"][0] == "serve"
    args = dict(a.split("=", 1) if "=" in a else (a, "") for a in c["args"][1:])
    assert re.fullmatch(r"models:/\$\(\w+\)@\$\(\w+\)", args["--model"]) and "--follow-alias" in args
    assert args["--host"] == "0.0.0.0" and int(args["--port"]) == c["ports"][0]["containerPort"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert float(args["--drain-timeout-s"]) + 10 < grace  # preStop sleep, then the drain
    assert "INDEXTTS_API_KEY" in {e["name"] for e in c["env"]}
    for selector in (deploy["spec"]["selector"]["matchLabels"],
                     docs["PodDisruptionBudget", "indextts-serve"]["spec"]["selector"]["matchLabels"],
                     docs["Service", "indextts-serve"]["spec"]["selector"]):  # fmt: skip
        assert selector.items() <= labels.items()
    hpa = docs["HorizontalPodAutoscaler", "indextts-serve"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "indextts-serve"}
    assert (
        hpa["minReplicas"] >= 2 and docs["PodDisruptionBudget", "indextts-serve"]["spec"]["minAvailable"] >= 1
    )


def _split_torchrun(argv: list[str]) -> tuple[list[str], list[str]]:
    """(torchrun options, `indextts-dist` argv) of a torchrun -m indextts_dist.cli.main command."""
    from torch.distributed.run import get_args_parser

    t = argv.index("torchrun")
    args = get_args_parser().parse_args(_substitute(argv[t + 1 :]))  # exits (fails) on an unknown option
    assert args.module and args.training_script == "indextts_dist.cli.main", argv
    return argv[t + 1 :], list(args.training_script_args)


@needs_kubectl
def test_commands_are_the_real_cli(rendered):
    from indextts_dist.cli.main import build_parser

    parser = build_parser()
    seen: set[str] = set()
    for docs in rendered.values():
        for doc, c in _containers(docs):
            argv = _argv(c)
            if "torchrun" in argv:
                _, cli = _split_torchrun(argv)
            elif argv[0] == "indextts-dist":
                cli = argv[1:]
            elif argv[0] == "mlflow":
                _check_mlflow(tuple(argv))
                seen.add("mlflow")
                continue
            else:
                raise AssertionError(f"{doc['metadata']['name']}: unknown command {argv}")
            sub = cli[0]
            seen.add(sub)
            parser.parse_args(_substitute(cli))  # SystemExit (test error) on a bad flag or value
            help_text = _cli_help(sub)
            for arg in cli[1:]:
                if arg.startswith("--"):
                    assert arg.split("=")[0] in help_text, f"{sub} does not accept {arg}"
    assert {"preprocess", "train", "serve", "mlflow"} <= seen


@functools.cache
def _cli_help(sub: str) -> str:
    """`indextts-dist SUB --help` as a user's shell prints it (one process per subcommand)."""
    argv = [sys.executable, "-m", "indextts_dist.cli.main", sub, "--help"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@functools.cache
def _check_mlflow(argv: tuple[str, ...]) -> None:
    assert argv[1] == "server"
    mlflow = Path(sys.executable).parent / "mlflow"
    help_text = subprocess.run(
        [str(mlflow), "server", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for arg in argv[2:]:
        assert arg.startswith("--") and arg.split("=")[0] in help_text, f"mlflow server does not accept {arg}"


def _names_read_by_source() -> str:
    return "\n".join(p.read_text(errors="replace") for p in (ROOT / "src").rglob("*.py"))


@needs_kubectl
def test_env_vars_are_read(rendered):
    source = _names_read_by_source()
    for docs in rendered.values():
        configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
        # a ConfigMap is shared: its keys may be expanded ($(NAME)) in any container of the render
        shared = "\n".join("\n".join(_argv(c)) for _, c in _containers(docs))
        for doc, c in _containers(docs):
            names = [e["name"] for e in c.get("env", [])]
            from_configmaps = []
            for ref in c.get("envFrom", []):
                from_configmaps += list(configmaps[ref["configMapRef"]["name"]])
            own = "\n".join(_argv(c)) + "\n" + "\n".join(str(e.get("value", "")) for e in c.get("env", []))
            for name in names + from_configmaps:
                text = own + "\n" + shared if name in from_configmaps else own
                used_here = re.search(rf"\$(\({name}\)|\{{{name}\}}|{name}\b)", text)
                ok = (
                    name in KUBERNETES
                    or THIRD_PARTY.match(name)
                    or re.search(rf"\b{name}\b", source)
                    or used_here
                )
                assert ok, f"{doc['metadata']['name']}/{c['name']}: {name} is read by nothing"
