"""The files people deploy with (deploy/), checked without a container engine: hadolint on the Dockerfile,
kubernetes-validate on every manifest, yamllint on every YAML file, and every command, port, path and
environment variable they use against the project itself; then the Dockerfile's install steps are run in a
fresh virtualenv and the installed service is started with the image's command on deploy/redis.conf (with
the container overrides of docker-compose.yml) until the image's HEALTHCHECK passes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import free_port, redis_ready, stop_process, wait_until, wait_until_serving

from broker.cli.main import build_parser
from broker.embedded.supervisor import find_redis_server

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent
#: Variables the deployment files may set that are not the service's own.
FOREIGN_VARIABLES = {"REDIS_PASSWORD", "NAMESPACE", "POD_FQDN", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}


def tool(name: str) -> str:
    found = BIN / name
    if not found.exists():
        pytest.fail(f"{name} is not installed (it is in the test extra: scripts/bootstrap)")
    return str(found)


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))


def manifests() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def service_variables() -> set[str]:
    """Every ``BROKER_*`` name the package reads (settings, the CLI's own variables)."""
    names: set[str] = set()
    for source in (REPO / "broker").rglob("*.py"):
        names |= set(re.findall(r"[\"'](BROKER_[A-Z0-9_]+)[\"']", source.read_text()))
    return names


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ))
    found = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), arguments
    return parsed


def broker_containers() -> Iterator[tuple[str, list[str], dict[str, Any]]]:
    """(where, broker arguments, container or service) of every container that runs the broker image."""
    for name, service in yaml.safe_load(COMPOSE.read_text())["services"].items():
        if service.get("image", "").startswith("broker-queue"):
            yield f"compose {name}", service["command"], service
    for path in manifests():
        for doc in documents(path):
            spec = doc.get("spec", {}).get("template", {}).get("spec", {})
            for container in spec.get("containers", []):
                if container["image"].startswith("broker-queue"):
                    yield f"{path.name} {container['name']}", container["args"], container


# ---------------------------------------------------------------------------------------------- linters


def test_hadolint_accepts_the_dockerfile() -> None:
    done = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_yamllint_accepts_every_yaml_file() -> None:
    files = yaml_files()
    assert COMPOSE in files and len(files) >= 10
    done = subprocess.run(
        [tool("yamllint"), "--strict", "-c", str(DEPLOY / ".yamllint"), *map(str, files)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_kubernetes_validate_accepts_every_manifest() -> None:
    files = manifests()
    kinds = {doc["kind"] for path in files for doc in documents(path)}
    wanted = {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Secret", "StatefulSet",
              "ConfigMap"}
    assert wanted <= kinds, wanted - kinds
    done = subprocess.run([tool("kubernetes-validate"), "--strict", *map(str, files)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_kustomization_lists_exactly_its_manifests() -> None:
    kustomizations = sorted(K8S.rglob("kustomization.yaml"))
    assert {p.parent.name for p in kustomizations} == {"base", "redis-sentinel"}
    for kustomization in kustomizations:
        listed = yaml.safe_load(kustomization.read_text())["resources"]
        present = sorted(p.name for p in kustomization.parent.glob("*.yaml") if p.name != "kustomization.yaml")
        assert sorted(listed) == present, kustomization


# ------------------------------------------------------------------------------- against the project


def test_every_broker_command_parses_and_every_variable_is_the_services() -> None:
    parser = build_parser()
    known = service_variables()
    seen = set()
    containers = list(broker_containers())
    assert len(containers) == 6, [c[0] for c in containers]  # compose: 2 API + 2 workers; k8s: API + worker
    for where, args, container in containers:
        try:
            parsed = parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{where}: broker {' '.join(args)} is not a command of broker")
        seen.add(args[0])
        if args[0] == "serve":
            assert parsed.host == "0.0.0.0" and parsed.no_workers, where  # workers run in their own containers
        env = container.get("environment") or {e["name"]: e.get("value") for e in container.get("env", [])}
        unknown = {name for name in env if name not in known and name not in FOREIGN_VARIABLES}
        assert not unknown, f"{where} sets variables the service does not read: {unknown}"
    assert seen == {"serve", "worker"}
    everywhere = "\n".join(p.read_text() for p in [DOCKERFILE, *yaml_files()])
    unknown = set(re.findall(r"\bBROKER_[A-Z0-9_]+", everywhere)) - known
    assert not unknown, f"the deployment files name variables the service does not read: {unknown}"
    secret = next(doc for path in manifests() for doc in documents(path) if doc["kind"] == "Secret")
    assert set(secret["stringData"]) <= known


def test_ports_and_paths_are_the_services() -> None:
    from broker.http.app import create_app
    from broker.settings import Settings

    routes = {getattr(r, "path", None) for r in create_app(Settings(redis_url="redis://127.0.0.1:1/0")).routes}
    api = next(doc for path in manifests() for doc in documents(path) if doc["metadata"]["name"] == "broker-api"
               and doc["kind"] == "Deployment")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    port = int(container["args"][container["args"].index("--port") + 1])
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"/healthz", "/readyz", "/metrics"} <= routes
    instructions = dockerfile_instructions()
    assert ("EXPOSE", str(port)) in instructions
    (health,) = [rest for ins, rest in instructions if ins == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{port}/healthz" in health
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] in routes
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    assert sorted(job["static_configs"][0]["targets"]) == sorted(
        f"{name}:{port}" for name, svc in compose.items() if svc.get("command", [""])[0] == "serve"
    )
    for name, service in compose.items():
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), f"compose {name} publishes {published} beyond loopback"
            if service.get("command", [""])[0] == "serve":
                assert published.endswith(f":{port}")
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"compose {name} mounts {source}, which does not exist"
    for rule in prometheus["rule_files"]:
        mounted = [v for v in compose["prometheus"]["volumes"] if v.split(":")[1] == rule]
        assert mounted and (DEPLOY / mounted[0].split(":")[0]).exists()
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    assert dashboard["uid"]
    for ins, rest in instructions:
        if ins == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (REPO / source).exists(), f"the Dockerfile copies {source}, which does not exist"


def test_the_sentinel_example_keeps_the_durability_of_redis_conf() -> None:
    def settings(text: str) -> dict[str, str]:
        found = {}
        for line in text.splitlines():
            words = line.strip().split(None, 1)
            if len(words) == 2 and not words[0].startswith("#"):
                found[words[0]] = words[1]
        return found

    ours = settings((DEPLOY / "redis.conf").read_text())
    (configmap,) = documents(K8S / "redis-sentinel" / "configmap.yaml")
    example = settings(configmap["data"]["redis.conf"])
    for name in ("appendonly", "appendfsync", "no-appendfsync-on-rewrite", "maxmemory-policy", "save"):
        assert example[name] == ours[name], name
    secret = next(doc for path in manifests() for doc in documents(path) if doc["kind"] == "Secret")
    url = secret["stringData"]["BROKER_REDIS_URL"]
    assert url.startswith("redis+sentinel://redis-sentinel:26379/")
    assert url.rsplit("/", 1)[1] in configmap["data"]["start-sentinel.sh"]


# ------------------------------------------------------------------------------ the image, run for real


@pytest.fixture
def compose_redis(tmp_path: Path) -> Iterator[str]:
    """redis-server as the compose file's redis service runs it: deploy/redis.conf, every directory it names made
    by the command or mounted (each mapped into ``tmp_path``), the command's overrides, and this machine's port."""
    service = yaml.safe_load(COMPOSE.read_text())["services"]["redis"]
    script = service["command"][-1].replace("$$REDIS_PASSWORD", "test-password")
    made_part, _, run_part = script.partition("&&")
    made = shlex.split(made_part)
    assert made[:2] == ["mkdir", "-p"], made
    words = shlex.split(run_part)
    assert words[:2] == ["exec", "redis-server"], words
    config_path = words[2]
    mounts = dict(reversed(v.split(":")[:2]) for v in service["volumes"])
    provided = [*made[2:], *(target for target, source in mounts.items() if not source.startswith("."))]
    text = (DEPLOY / mounts[config_path]).read_text()
    needed = set()
    for line in text.splitlines():
        words_of_line = line.split()
        if len(words_of_line) == 2 and words_of_line[0] in ("dir", "logfile", "pidfile", "unixsocket"):
            needed.add(words_of_line[1] if words_of_line[0] == "dir" else str(Path(words_of_line[1]).parent))
    assert needed and needed <= set(provided), f"redis.conf needs {needed - set(provided)}, which compose lacks"
    for directory in sorted(provided, key=len, reverse=True):
        here = tmp_path / directory.strip("/").replace("/", "_")
        here.mkdir()
        text = text.replace(directory, str(here))
    config = tmp_path / "redis.conf"
    config.write_text(text)
    args = words[3:]
    args[args.index("--bind") + 1] = "127.0.0.1"
    port = free_port()
    proc = subprocess.Popen(
        [find_redis_server(), str(config), *args, "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: redis_ready(port, password="test-password") or proc.poll() is not None, 15,
                   what="redis-server with deploy/redis.conf")
        assert proc.poll() is None, "redis-server with deploy/redis.conf and the compose overrides exited"
        yield f"redis://:test-password@127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


def test_the_dockerfile_installs_a_service_that_passes_its_healthcheck(tmp_path: Path, compose_redis: str) -> None:
    """The RUN steps of both stages, in order, with the image's paths mapped into ``tmp_path`` (the user is not
    created: that needs no check here, and the tests do not add users to the machine)."""
    roots = {"/src": tmp_path / "src", "/wheels": tmp_path / "wheels", "/opt/broker/venv": tmp_path / "venv"}
    dropped = ("VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_") and k not in dropped}
    env["PATH"] = f"{roots['/opt/broker/venv']}/bin:{env['PATH']}"
    workdir = tmp_path
    ran = 0
    for instruction, rest in dockerfile_instructions():
        if instruction == "FROM":
            workdir = tmp_path
        elif instruction == "WORKDIR":
            workdir = roots.get(rest, tmp_path / "home")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY" and not rest.startswith("--from"):
            *sources, dest = rest.split()
            for source in sources:
                target = workdir / dest / Path(source).name if dest.endswith("/") else workdir / dest
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(REPO / source, target)
        elif instruction == "RUN":
            if rest.startswith("useradd"):
                continue
            command = rest
            for image_path, here in sorted(roots.items(), key=lambda item: -len(item[0])):
                command = command.replace(image_path, str(here))
            command = re.sub(r"^python ", f"{shlex.quote(sys.executable)} ", command)
            done = subprocess.run(["sh", "-c", command], cwd=workdir, env=env, capture_output=True, text=True,
                                  timeout=400)
            assert done.returncode == 0, f"RUN {rest}\n{done.stdout}\n{done.stderr}"
            ran += 1
    assert ran == 3
    installed = roots["/opt/broker/venv"] / "bin" / "broker"
    assert installed.exists()

    instructions = dict(dockerfile_instructions())
    args = exec_form(instructions["CMD"])
    port = free_port()
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    run_dir = tmp_path / "home"
    run_dir.mkdir(exist_ok=True)
    env.update(BROKER_REDIS_URL=compose_redis, BROKER_API_KEYS="deploy:deploy-test-key", BROKER_LOG_FORMAT="json")
    err = run_dir / "serve.err"
    with open(err, "wb") as err_file:
        serve = subprocess.Popen([str(installed), *args], cwd=run_dir, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        wait_until_serving(serve, f"http://127.0.0.1:{port}", 60, lambda: err.read_text(errors="replace"))
        health = exec_form(instructions["HEALTHCHECK"].split(" CMD ", 1)[1])
        assert health[0] == "python"
        check = [str(roots["/opt/broker/venv"] / "bin" / "python"), *health[1:]]
        check[-1] = check[-1].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        assert subprocess.run(check, env=env, timeout=10).returncode == 0
    finally:
        status = stop_process(serve, timeout=40)
    assert status == 0, err.read_text()
    # The same check fails when nothing serves: the HEALTHCHECK can fail.
    assert subprocess.run(check, env=env, timeout=10, capture_output=True).returncode != 0
