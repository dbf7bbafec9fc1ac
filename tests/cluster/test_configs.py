"""The cluster launch files in cluster/ are valid for the tools that read them and agree with the
project: Ray's own schema for the cloud configs, the KubeRay manifests' structure and the search
command they run, the SLURM script's syntax, and one Ray version everywhere. Nothing is started."""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from search.tune.adapter import validate_cluster_config
from search.run import parse_args

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
CLOUD_CONFIGS = [CLUSTER / "aws.yaml", CLUSTER / "gcp.yaml"]
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob.yaml"
SLURM = CLUSTER / "slurm.sbatch"
DOCKERFILE = CLUSTER / "Dockerfile"
SPACES = sorted((ROOT / "spaces").glob("*.yaml"))

# Things that look like a secret: AWS keys, private keys, passwords, tokens, W&B API keys
# (40 hex characters).
CREDENTIAL_PATTERNS = [
    re.compile(r"(?i)aws_secret_access_key"),
    re.compile(r"(?i)aws_session_token\s*[:=]"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"(?i)private_key"),
    re.compile(r"-----BEGIN"),
    re.compile(r"(?i)password\s*[:=]"),
    re.compile(r"(?i)(api[_-]?key|secret|token)\s*[:=]\s*['\"]?[A-Za-z0-9/+_=-]{16,}"),
    re.compile(r"\b[0-9a-f]{40}\b"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
]


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def worker_types(config: dict) -> dict[str, dict]:
    return {name: node for name, node in config["available_node_types"].items()
            if name != config["head_node_type"]}


def trial_resources() -> list[dict]:
    """The ``trial.resources`` of every bundled space file (its GPU variant)."""
    return [load(path)["trial"]["resources"] for path in SPACES]


# ---------------------------------------------------------------- cloud configs (ray up)

@pytest.mark.parametrize("path", CLOUD_CONFIGS, ids=lambda p: p.stem)
def test_cloud_config_passes_rays_validation(path):
    """The schema check `ray up` runs, on the file as written and after Ray fills in its
    defaults (prepare_config only merges the provider's defaults file: no cloud call)."""
    config = load(path)
    validate_cluster_config(config)
    prepared = validate_cluster_config(copy.deepcopy(config), prepare=True)
    assert prepared["provider"]["type"] == path.stem


def _unknown_top_level_key(config):
    config["no_such_setting"] = 1


def _node_type_without_node_config(config):
    del config["available_node_types"][config["head_node_type"]]["node_config"]


def _head_type_not_defined(config):
    config["head_node_type"] = "no-such-type"


def _min_workers_above_max_workers(config):
    for node in worker_types(config).values():
        node["min_workers"] = config["max_workers"] + 1


@pytest.mark.parametrize("path", CLOUD_CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("breakage", [_unknown_top_level_key, _node_type_without_node_config,
                                      _head_type_not_defined, _min_workers_above_max_workers],
                         ids=lambda f: f.__name__.strip("_"))
def test_rays_validation_rejects_a_broken_copy(path, breakage):
    """The validation above is not vacuous: the same call rejects a broken copy of the file."""
    config = load(path)
    breakage(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        validate_cluster_config(config)


@pytest.mark.parametrize("path", CLOUD_CONFIGS, ids=lambda p: p.stem)
def test_gpu_workers_autoscale_and_fit_the_bundled_trials(path):
    """A GPU worker type the autoscaler can grow (min < max), with one worker kept up: the driver
    stops at once when no node can run a trial. Every bundled space's trial fits on one."""
    config = load(path)
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert head["resources"].get("CPU") == 0, "the head must not take trials"
    gpu_types = {name: node for name, node in worker_types(config).items()
                 if node.get("resources", {}).get("GPU", 0) >= 1}
    assert gpu_types, "no worker type declares a GPU"
    for name, node in gpu_types.items():
        assert 1 <= node["min_workers"] < node["max_workers"] <= config["max_workers"], name
        for resources in trial_resources():
            assert node["resources"]["CPU"] >= resources["cpu"], name
            assert node["resources"]["GPU"] >= resources["gpu"], name
        accelerators = node["node_config"].get("guestAccelerators")
        if config["provider"]["type"] == "gcp" and accelerators is not None:
            assert sum(a["acceleratorCount"] for a in accelerators) == node["resources"]["GPU"], name


@pytest.mark.parametrize("path", CLOUD_CONFIGS, ids=lambda p: p.stem)
def test_start_commands_start_a_head_and_workers_that_join_it(path):
    config = load(path)
    assert any("ray start" in c and "--head" in c and "--autoscaling-config" in c
               for c in config["head_start_ray_commands"])
    assert any("ray start" in c and "--address=$RAY_HEAD_IP:6379" in c
               for c in config["worker_start_ray_commands"])
    assert not any("--head" in c for c in config["worker_start_ray_commands"])


@pytest.mark.parametrize("path", CLOUD_CONFIGS, ids=lambda p: p.stem)
def test_setup_installs_this_project_with_the_installed_ray(path):
    """The repository is synced to ~/lens-search and installed there, with the Ray version of
    the machine running `ray up` (the autoscaler needs them to match)."""
    config = load(path)
    assert config["file_mounts"] == {"~/lens-search": "."}
    installs = [c for c in config["setup_commands"] if "pip install" in c]
    assert any("-e ~/lens-search" in c for c in installs)
    pinned = {m for c in installs for m in re.findall(r"ray\[[a-z,]+\]==([0-9][^\"' ]*)", c)}
    assert pinned == {ray.__version__}


# ---------------------------------------------------------------- KubeRay

def cluster_specs() -> list[tuple[str, dict]]:
    """The RayCluster spec of both manifests."""
    (raycluster,) = [d for d in documents(RAYCLUSTER) if d["kind"] == "RayCluster"]
    (rayjob,) = documents(RAYJOB)
    return [("raycluster", raycluster["spec"]), ("rayjob", rayjob["spec"]["rayClusterSpec"])]


def pod_templates(spec: dict) -> list[tuple[dict, dict]]:
    """(rayStartParams, pod spec) of the head group and of every worker group."""
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [(group["rayStartParams"], group["template"]["spec"]) for group in groups]


def head_mounts(spec: dict) -> list[Path]:
    (container,) = spec["headGroupSpec"]["template"]["spec"]["containers"]
    return [Path(m["mountPath"]) for m in container.get("volumeMounts", [])]


def is_under(path: str, folders: list[Path]) -> bool:
    return any(Path(path) == f or f in Path(path).parents for f in folders)


def test_raycluster_has_a_head_and_a_gpu_worker_group():
    docs = documents(RAYCLUSTER)
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["metadata"]["name"] == "lens-search"
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    gpu_groups = []
    for group in spec["workerGroupSpecs"]:
        for container in group["template"]["spec"]["containers"]:
            resources = container.get("resources", {})
            if int(resources.get("limits", {}).get("nvidia.com/gpu", 0)) >= 1:
                assert int(resources.get("requests", {}).get("nvidia.com/gpu", 0)) >= 1
                gpu_groups.append(group)
    assert gpu_groups, "no worker group requests nvidia.com/gpu"
    for group in gpu_groups:
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["minReplicas"] < group["maxReplicas"]


@pytest.mark.parametrize("name,spec", cluster_specs(), ids=lambda x: x if isinstance(x, str) else "")
def test_ray_start_params_are_strings(name, spec):
    """KubeRay rejects non-string rayStartParams values ("0", not 0)."""
    for params, _ in pod_templates(spec):
        for key, value in params.items():
            assert isinstance(value, str), f"{name}: rayStartParams.{key} = {value!r}"


@pytest.mark.parametrize("name,spec", cluster_specs(), ids=lambda x: x if isinstance(x, str) else "")
def test_mounted_volumes_are_defined_and_their_claims_exist(name, spec):
    claims = {d["metadata"]["name"] for d in documents(RAYCLUSTER) if d["kind"] == "PersistentVolumeClaim"}
    assert "lens-search-results" in claims
    for _, pod in pod_templates(spec):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            mounts = container.get("volumeMounts", [])
            assert "/results" in {m["mountPath"] for m in mounts}, f"{name}: {container['name']}"
            for mount in mounts:
                assert mount["name"] in volumes, f"{name}: {container['name']}: {mount['name']}"
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name


def test_results_volume_is_shared_between_pods():
    (claim,) = [d for d in documents(RAYCLUSTER)
                if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == "lens-search-results"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_rayjob_runs_a_search_the_project_accepts():
    (job,) = documents(RAYJOB)
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["metadata"]["name"] == "lens-search"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    assert isinstance(job["spec"]["ttlSecondsAfterFinished"], int)
    tokens = shlex.split(job["spec"]["entrypoint"])
    assert tokens[:3] == ["python", "-m", "search.run"]
    args = parse_args(tokens[3:])
    assert args.address == "auto"
    assert (ROOT / args.space).is_file(), args.space
    mounts = head_mounts(job["spec"]["rayClusterSpec"])
    assert is_under(args.storage, mounts), args.storage
    assert is_under(args.results, mounts), args.results
    # A set too big for the object store is read from data.path on every node.
    (data_path,) = [s.split("=", 1)[1] for s in args.set if s.startswith("data.path=")]
    for _, pod in pod_templates(job["spec"]["rayClusterSpec"]):
        for container in pod["containers"]:
            folders = [Path(m["mountPath"]) for m in container.get("volumeMounts", [])]
            assert is_under(data_path, folders), container["name"]


def test_rayjob_cluster_is_the_raycluster():
    """The RayJob starts the same cluster as raycluster.yaml: same image, groups and volumes."""
    (_, cluster), (_, job_cluster) = cluster_specs()
    assert job_cluster == cluster
    images = {c["image"] for _, pod in pod_templates(cluster) for c in pod["containers"]}
    assert len(images) == 1


# ---------------------------------------------------------------- SLURM

def test_slurm_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(SLURM)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_bash_syntax_check_catches_a_broken_copy(tmp_path):
    broken = tmp_path / "broken.sbatch"
    broken.write_text(SLURM.read_text() + "\nif true; then\n    echo unterminated\n")
    result = subprocess.run(["bash", "-n", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0


def test_slurm_directives_come_before_any_command():
    """sbatch stops reading #SBATCH lines at the first command."""
    lines = SLURM.read_text().splitlines()
    directives = [i for i, line in enumerate(lines) if line.startswith("#SBATCH")]
    commands = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    assert directives and max(directives) < min(commands)
    assert any(lines[i].startswith("#SBATCH --nodes") for i in directives)


def test_slurm_search_joins_the_ray_cluster_and_uses_shared_storage():
    (line,) = [line for line in SLURM.read_text().splitlines()
               if "-m search.run" in line and not line.lstrip().startswith("#")]
    assert "--address" in line and "--storage" in line and "--results" in line
    assert '"$@"' in line, "extra sbatch arguments must reach the search"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_slurm_script_passes_shellcheck():
    result = subprocess.run(["shellcheck", str(SLURM)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# ---------------------------------------------------------------- image and versions

def test_one_ray_version_everywhere():
    """The image's Ray, the KubeRay rayVersion and the installed Ray are the same version."""
    (image,) = re.findall(r"^FROM\s+rayproject/ray:(\d+\.\d+\.\d+)\S*", DOCKERFILE.read_text(), re.M)
    assert image == ray.__version__
    for name, spec in cluster_specs():
        assert spec["rayVersion"] == ray.__version__, name


def _dockerignore_patterns() -> list[re.Pattern]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            regex = re.escape(line).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
            patterns.append(re.compile(regex + "$"))
    return patterns


def _ignored(path: str, patterns: list[re.Pattern]) -> bool:
    """Whether Docker leaves ``path`` (or a folder above it) out of the build context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(p.match(prefix) for p in patterns for prefix in prefixes)


def test_docker_build_context_has_what_the_image_copies():
    patterns = _dockerignore_patterns()
    for ignored in (".venv", "data", "results", ".git", "results/lens_finding/wandb"):
        assert _ignored(ignored, patterns), ignored
    sources = [s.rstrip("/") for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY")
               for s in line.split()[1:-1] if not s.startswith("--")]
    assert {"pyproject.toml", "README.md", "search", "trainable", "spaces"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        files = [source] if (ROOT / source).is_file() else [
            str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*") if p.is_file()]
        kept = [f for f in files if not _ignored(f, patterns)]
        assert kept, f"{source}: everything in it is excluded by .dockerignore"
    assert not _ignored("trainable/data/__init__.py", patterns)


# ---------------------------------------------------------------- credentials

def test_no_credentials_in_cluster_files():
    files = [p for p in CLUSTER.rglob("*") if p.is_file()] + [ROOT / ".dockerignore"]
    assert len(files) >= 7
    for path in files:
        text = path.read_text()
        for pattern in CREDENTIAL_PATTERNS:
            match = pattern.search(text)
            assert match is None, f"{path.relative_to(ROOT)}: looks like a credential: {match.group(0)!r}"


@pytest.mark.parametrize("planted", [
    "aws_secret_access_key = abc",
    "AKIAABCDEFGHIJKLMNOP",
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "password: hunter2",
    "WANDB_API_KEY=0123456789abcdef0123456789abcdef01234567",
    "token: 'abcdefghijklmnopqrstuvwx'",
])
def test_credential_check_catches_planted_secrets(planted):
    assert any(p.search(planted) for p in CREDENTIAL_PATTERNS)
