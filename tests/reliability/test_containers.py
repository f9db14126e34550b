"""The container deployment matches the code: the compose stack and the Kubernetes base run one beat and a worker
for every queue tasks are sent to; health probes reach /api/health over plain HTTP; the image's health check
(deploy/docker/healthcheck.py) tells each process apart and fails when the web process does not answer."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.test import Client

BASE_DIR = Path(settings.BASE_DIR)
K8S_BASE = BASE_DIR / "deploy" / "k8s" / "base"


def sent_queues() -> set[str]:
    from core.schedules import DEFAULT_SCHEDULES

    sent = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    return sent | {entry.queue for entry in DEFAULT_SCHEDULES} | {settings.CELERY_TASK_DEFAULT_QUEUE}


def k8s_objects() -> list[dict]:
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    return [obj for name in kustomization["resources"] for obj in yaml.safe_load_all((K8S_BASE / name).read_text())]


def pod_specs() -> dict[str, dict]:
    return {
        obj["metadata"]["name"]: obj["spec"]["template"]["spec"]
        for obj in k8s_objects()
        if obj["kind"] in ("Deployment", "Job")
    }


def test_compose_runs_one_beat_and_a_worker_for_every_queue_tasks_are_sent_to():
    compose = yaml.safe_load((BASE_DIR / "deploy" / "compose" / "docker-compose.yml").read_text())
    commands = {name: service.get("command", []) for name, service in compose["services"].items()}
    assert [name for name, command in commands.items() if command == ["beat"]] == ["beat"]
    consumed = {command[1] for command in commands.values() if command[:1] == ["worker"]}
    assert consumed == sent_queues()
    assert commands["release"] == ["release"] and commands["web"] == ["web"]
    for name, service in compose["services"].items():
        if name in ("db", "redis", "release"):
            continue
        assert service["depends_on"] == {"release": {"condition": "service_completed_successfully"}}, name
        assert service["read_only"] is True, name


def test_kubernetes_runs_one_beat_with_recreate_and_a_worker_deployment_for_every_queue():
    deployments = {obj["metadata"]["name"]: obj for obj in k8s_objects() if obj["kind"] == "Deployment"}
    beats = [d for d in deployments.values() if d["spec"]["template"]["spec"]["containers"][0]["args"] == ["beat"]]
    assert len(beats) == 1
    assert beats[0]["spec"]["replicas"] == 1 and beats[0]["spec"]["strategy"] == {"type": "Recreate"}
    consumed = {
        d["spec"]["template"]["spec"]["containers"][0]["args"][1]
        for d in deployments.values()
        if d["spec"]["template"]["spec"]["containers"][0]["args"][0] == "worker"
    }
    assert consumed == sent_queues()


def test_every_kubernetes_container_runs_non_root_on_a_read_only_root_with_limits():
    for name, spec in pod_specs().items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert security["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), (name, container["name"])
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], (name, container["name"])
        for ref in spec["containers"][0]["envFrom"]:
            assert ref.keys() <= {"configMapRef", "secretRef"}
    secrets = [obj for obj in k8s_objects() if obj["kind"] == "Secret"]
    assert secrets == []  # referenced, never committed


@pytest.mark.django_db
def test_health_answers_plain_http_while_every_other_page_redirects_to_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/login/").status_code == 301
    for path in ("/api/health", "/api/health/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.json()["status"] == "healthy"


# The image's health check -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthcheck():
    spec = importlib.util.spec_from_file_location("healthcheck", BASE_DIR / "deploy" / "docker" / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (
            ["/opt/venv/bin/python", "/opt/venv/bin/gunicorn", "energyarb.wsgi:application", "--bind", "0.0.0.0:8000"],
            ("web", None),
        ),
        (
            [
                "/opt/venv/bin/python",
                "/opt/venv/bin/celery",
                "-A",
                "energyarb",
                "worker",
                "--queues",
                "optimizer",
                "--hostname",
                "optimizer@%h",
            ],
            ("worker", "optimizer"),
        ),
        (
            ["/opt/venv/bin/python", "/opt/venv/bin/celery", "-A", "energyarb", "beat", "--loglevel", "INFO"],
            ("beat", None),
        ),
        (["python", "manage.py", "seed_sites"], ("other", None)),
    ],
)
def test_health_check_tells_the_process_from_its_command_line(healthcheck, argv, role):
    assert healthcheck.role_of(argv) == role


def test_health_check_sends_a_host_that_allowed_hosts_accepts(healthcheck):
    assert healthcheck.request_host("energyarb.example.com,localhost") == "energyarb.example.com"
    assert healthcheck.request_host(".example.com") == "example.com"
    assert healthcheck.request_host("*") == "localhost"


def test_health_check_of_web_passes_on_a_live_server_and_fails_on_a_closed_port(healthcheck, live_server):
    healthy, reason = healthcheck.check_web(f"{live_server.url}/api/health", "localhost")
    assert healthy, reason
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    healthy, reason = healthcheck.check_web(f"http://127.0.0.1:{closed}/api/health", "localhost")
    assert not healthy and "refused" in reason.lower()
    healthy, reason = healthcheck.check_web(f"{live_server.url}/api/health", "not-allowed.example.org")
    assert not healthy and "400" in reason
