"""docker-compose.yml is valid and has the services the deployment needs.

`docker compose config` only reads the file: no Docker engine is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKER = shutil.which("docker")
JWT_SECRET = "compose-config-test-secret-0123456789abcdef"

pytestmark = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")


def compose(*args: str, jwt_secret: str | None = JWT_SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "POSTGRES_PASSWORD")}
    if jwt_secret is not None:
        env["JWT_SECRET"] = jwt_secret
    return subprocess.run(
        [DOCKER, "compose", "-f", str(COMPOSE_FILE), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_is_valid() -> None:
    result = compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_services_health_checks_and_start_order() -> None:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]

    assert set(services) == {"postgres", "redis", "ollama", "migrate", "api", "worker"}
    for name in ("postgres", "redis", "api"):
        healthcheck = services[name].get("healthcheck")
        assert healthcheck and healthcheck.get("test") and not healthcheck.get("disable"), name

    api = services["api"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("migrate", "api", "worker"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        assert environment["REDIS_URL"].startswith("redis://redis:"), name
        assert environment["OLLAMA_HOST"] == "http://ollama:11434", name
        assert environment["APP_ENV"] == "production", name
        assert environment["JWT_SECRET"] == JWT_SECRET, name


def test_compose_refuses_to_start_without_a_jwt_secret() -> None:
    result = compose("config", "--quiet", jwt_secret=None)
    assert result.returncode != 0
    assert "set JWT_SECRET" in result.stderr


def test_api_and_worker_share_the_blob_store_on_a_volume() -> None:
    """The api writes uploaded originals and the worker's ingestion reads them: both must mount
    the same named volume at BLOB_ROOT (a path in the container would be lost on recreation
    and invisible to the other service)."""
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    services = config["services"]

    blob_root = services["api"]["environment"]["BLOB_ROOT"]
    assert blob_root == "/var/lib/knowledge-desk/blobs"
    assert services["worker"]["environment"]["BLOB_ROOT"] == blob_root
    for name in ("api", "worker"):
        mounts = [(v["type"], v["source"], v["target"]) for v in services[name]["volumes"]]
        assert mounts == [("volume", "blobs", blob_root)], name
    assert "blobs" in config["volumes"]


def test_the_image_gives_the_app_user_the_blob_store_mount_point() -> None:
    """A fresh named volume copies the owner of the directory it is mounted on; the image runs
    as `app`, so that directory must exist and belong to `app` before `USER app`."""
    lines = [line.strip() for line in (REPO_ROOT / "Dockerfile").read_text().splitlines()]
    user_at = lines.index("USER app")
    prepared = [
        line
        for line in lines[:user_at]
        if "mkdir -p /var/lib/knowledge-desk/blobs" in line
        and "chown -R app /var/lib/knowledge-desk" in line
    ]
    assert len(prepared) == 1
