"""Benchmark: the AppShell screen query (`me` + `workspaces`) through the Kailash workflow path
versus the same data read directly with SQLAlchemy, in the same run, on the same server.

    uv run --frozen python bench/bench_app_shell.py [--full] [--iterations N] [--warmup N]
        [--db sqlite|postgres|both] [--no-http] [--profile]

A script, not a test: it prints figures and asserts nothing about time. Per database it builds
the app with `create_app(settings)` and runs its lifespan (one engine, one sessionmaker, one
runtime), migrates a fresh database, and signs up a user who belongs to 10 workspaces
(their own plus nine they were invited to and accepted). Then it measures three levels. Each
level warms up first and interleaves its paths within every iteration, rotating which one goes
first, so that drift (CPU frequency, other processes, caches) hits every path alike:

1. service - `runner.call(LOAD_ME, deps) + runner.call(LIST_MY_WORKSPACES, deps, ...)` (the
   declarations of workflows/accounts.py) versus the same two service functions awaited
   directly: the pure Kailash overhead.
2. graphql (in-process) - the AppShell document executed by the app's schema (build_schema)
   with the real WorkflowRunner; the same schema with a DirectRunner that awaits each declared
   workflow's service function without Kailash (isolates Kailash inside the GraphQL path); and
   a hand-written direct path that runs the same three SQLAlchemy statements inline in one
   session and builds the same result dict (no GraphQL, no services, no Kailash). Every path's
   result is checked equal first.
3. http (unless --no-http) - a live uvicorn serving `bench.bench_app_shell:create_bench_app`
   (the real app plus one route serving the direct path): POST /graphql versus POST
   /bench/app-shell-direct, over one keep-alive connection.

By default a quick run (100 timed runs per path); `--full` gives the 500 of the recorded
figures. `--profile` adds a cProfile of WorkflowRunner.call. The what-if paths of earlier
versions (O(1) reprs, parse and validation caches) are the app's own code now; their figures
are in adr/0006-kailash-overhead.md.

It also counts the SQL statements of one AppShell query through the schema (a
`before_cursor_execute` listener on the engine) and prints them. Temporary files, the PostgreSQL
server and the uvicorn servers are removed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `app`, `resolvers`, ... importable
    sys.path.insert(0, str(ROOT))

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker  # noqa: E402
from strawberry import relay  # noqa: E402

from app import migrate  # noqa: E402
from app.main import create_app  # noqa: E402
from base.auth.principal import Principal  # noqa: E402
from base.models.accounts import Membership, Role, User, Workspace  # noqa: E402
from base.settings import Settings  # noqa: E402
from bench import common  # noqa: E402
from bench.common import add_size_flag, apply_sizes, measure, sql_trace  # noqa: E402
from resolvers.accounts.types import initials_of  # noqa: E402
from resolvers.core.context import Context  # noqa: E402
from resolvers.router import principal_from  # noqa: E402
from resolvers.schema import build_schema  # noqa: E402
from runtime.runner import ApiWorkflow, WorkflowRunner  # noqa: E402
from services import accounts, workspaces  # noqa: E402
from services.deps import ServiceDeps  # noqa: E402
from services.pagination import DEFAULT_PAGE_SIZE, _encode  # noqa: E402
from workflows.accounts import LIST_MY_WORKSPACES, LOAD_ME  # noqa: E402

APP_SHELL = (ROOT / "graphql" / "operations" / "AppShell.graphql").read_text()
BENCH_SECRET = "bench-app-shell-secret-0123456789abcdef"
PASSWORD = "a long bench pass phrase"
WORKSPACES = 10  # the user's own workspace plus nine invitations
INVITED_ROLES = (Role.VIEWER, Role.EDITOR, Role.ADMIN)
GOAL_RATIO = 1.3
GOAL_SQLITE_P50_MS = 5.0

# Path labels (the first path of each level is the production workflow path).
SVC_KAILASH = "kailash: runner.call x2"
SVC_DIRECT = "direct: service functions x2"
GQL_KAILASH = "kailash: schema + WorkflowRunner"
GQL_DIRECT_RUNNER = "schema + DirectRunner (no Kailash)"
GQL_INLINE = "direct: inline SQLAlchemy"
HTTP_KAILASH = "kailash: POST /graphql"
HTTP_DIRECT = "direct: POST /bench/app-shell-direct"


def bench_settings(database_url: str) -> Settings:
    return Settings(
        app_env="development",
        database_url=database_url,
        redis_url=None,
        jwt_secret=BENCH_SECRET,
        log_level="WARNING",
    )


# --- the direct paths --------------------------------------------------------------------------


class DirectRunner:
    """A WorkflowRunner stand-in: awaits the service function a declaration wraps, no Kailash."""

    async def call(
        self, spec: ApiWorkflow[..., Any], deps: ServiceDeps, /, *args: Any, **kwargs: Any
    ) -> Any:
        return await spec.service(deps, *args, **kwargs)


def _global_id(type_name: str, value: uuid.UUID) -> str:
    return str(relay.GlobalID(type_name, str(value)))


async def inline_app_shell(
    db: async_sessionmaker[Any], user_id: uuid.UUID, first: int = DEFAULT_PAGE_SIZE
) -> dict[str, Any]:
    """What a hand-written resolver would do: the same three statements in one session."""
    mine = select(Workspace, Membership.role, Membership.joined_at).join(
        Membership, (Membership.workspace_id == Workspace.id) & (Membership.user_id == user_id)
    )
    async with db() as session:
        user = await session.get(User, user_id)
        count = select(func.count()).select_from(mine.subquery())
        total = (await session.execute(count)).scalar_one()
        page = mine.order_by(Membership.joined_at.asc(), Workspace.id.asc()).limit(first + 1)
        rows = (await session.execute(page)).all()
    if user is None:
        raise RuntimeError("the benchmark user is gone")
    edges = [
        {
            "cursor": _encode((joined_at, workspace.id)),  # the services' own cursor format
            "node": {
                "id": _global_id("Workspace", workspace.id),
                "name": workspace.name,
                "viewerRole": role.value,
            },
        }
        for workspace, role, joined_at in rows[:first]
    ]
    return {
        "me": {
            "id": _global_id("User", user.id),
            "name": user.name,
            "email": user.email,
            "initials": initials_of(user.name),
        },
        "workspaces": {
            "totalCount": total,
            "pageInfo": {
                "hasNextPage": len(rows) > first,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
            "edges": edges,
        },
    }


def create_bench_app() -> FastAPI:
    """The real app (settings from the environment) plus POST /bench/app-shell-direct."""
    app = create_app(Settings())

    @app.post("/bench/app-shell-direct", include_in_schema=False)
    async def app_shell_direct(request: Request) -> JSONResponse:
        body = await request.json()  # parsed like the GraphQL body, for a like-for-like request
        first = (body.get("variables") or {}).get("first") or DEFAULT_PAGE_SIZE
        deps: ServiceDeps = app.state.deps
        principal = principal_from(
            request.headers.get("authorization"), secret=deps.settings.jwt_secret, client=None
        )
        data = await inline_app_shell(deps.db, principal.require_user(), first)
        return JSONResponse({"data": data})

    return app


# --- measurement -------------------------------------------------------------------------------


@dataclass
class Level:
    """One level's samples (path label -> durations in ns) and the path ratios are taken to."""

    name: str
    samples: dict[str, list[int]]
    baseline: str


def percentile(values: list[int], p: float) -> float:
    """Nearest-rank percentile of nanosecond samples, in milliseconds."""
    return common.percentile(values, p, scale=1e6)


# --- data --------------------------------------------------------------------------------------


async def seed(deps: ServiceDeps) -> tuple[uuid.UUID, str]:
    """A user in WORKSPACES workspaces, made through the services; (user id, access token)."""
    tag = uuid.uuid4().hex[:8]
    me = await accounts.sign_up(
        deps, name="Ada Lovelace", email=f"ada-{tag}@example.com", password=PASSWORD
    )
    as_me = deps.for_principal(Principal(user_id=me.user.id))
    for i in range(WORKSPACES - 1):
        other = await accounts.sign_up(
            deps, name=f"Owner {i}", email=f"owner{i}-{tag}@example.com", password=PASSWORD
        )
        as_other = deps.for_principal(Principal(user_id=other.user.id))
        [own] = (await workspaces.list_my_workspaces(as_other)).edges
        created = await workspaces.invite_member(
            as_other,
            workspace_id=own.node.id,
            email=me.user.email,
            role=INVITED_ROLES[i % len(INVITED_ROLES)],
        )
        await workspaces.accept_invite(as_me, token=created.link.rsplit("/", 1)[1])
    return me.user.id, me.access_token


# --- statement count ---------------------------------------------------------------------------


def print_trace(label: str, trace: dict[str, list[Any]], show: bool) -> None:
    print(
        f"  {label}: {len(trace['statements'])} SQL statements, "
        f"{len(trace['checkouts'])} connection checkouts, "
        f"{len(trace['transactions'])} transactions"
    )
    if show:
        for n, statement in enumerate(trace["statements"], 1):
            print(f"    {n}. {statement}")


# --- profile -----------------------------------------------------------------------------------

KAILASH_DIR = f"{os.sep}kailash{os.sep}"


def print_profile(profiler: cProfile.Profile, calls: int) -> None:
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [
        (tottime, cumtime, filename, line, fn)
        for (filename, line, fn), (_cc, _n, tottime, cumtime, _callers) in raw.items()
    ]
    total = sum(r[0] for r in rows)
    in_sdk = sum(r[0] for r in rows if KAILASH_DIR in r[2])
    print(
        f"    {total / calls * 1e3:.3f} ms/call under the profiler, own time in kailash/*: "
        f"{in_sdk / calls * 1e3:.3f} ms/call ({in_sdk / total:.0%}). The profiler inflates "
        "every call (read shares, not absolutes); a coroutine counts once per resumption."
    )
    print("    kailash functions by cumulative time, ms per call (cum / own):")
    for tottime, cumtime, filename, line, fn in sorted(
        (r for r in rows if KAILASH_DIR in r[2]), key=lambda r: -r[1]
    )[:25]:
        where = filename.split(KAILASH_DIR, 1)[1]
        print(
            f"    {cumtime / calls * 1e3:7.3f} {tottime / calls * 1e3:7.3f}  "
            f"kailash/{where}:{line} {fn}"
        )
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(15)
    print("    all code, top 15 by own time:")
    for line in buffer.getvalue().splitlines()[6:]:
        if line.strip():
            print(f"      {line}")


# --- one database ------------------------------------------------------------------------------


async def bench_in_process(settings: Settings, args: argparse.Namespace) -> tuple[list[Level], str]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine: AsyncEngine = app.state.engine
        runner: WorkflowRunner = app.state.runner
        user_id, token = await seed(app.state.deps)
        deps = app.state.deps.for_principal(Principal(user_id=user_id, client_address="127.0.0.1"))
        schema = build_schema(settings)
        direct_runner = DirectRunner()

        async def run_graphql(active_schema: Any, active_runner: Any) -> dict[str, Any]:
            context = Context(deps=deps, runner=active_runner)
            result = await active_schema.execute(APP_SHELL, context_value=context)
            if result.errors:
                raise RuntimeError(f"AppShell failed: {result.errors}")
            return result.data  # type: ignore[no-any-return]

        service_paths: dict[str, Callable[[], Awaitable[Any]]] = {}
        graphql_paths: dict[str, Callable[[], Awaitable[Any]]] = {}

        async def kailash_service() -> None:
            await runner.call(LOAD_ME, deps)
            await runner.call(LIST_MY_WORKSPACES, deps, first=None, after=None)

        async def direct_service() -> None:
            await accounts.get_me(deps)
            await workspaces.list_my_workspaces(deps, first=None, after=None)

        service_paths[SVC_KAILASH] = kailash_service
        graphql_paths[GQL_KAILASH] = lambda: run_graphql(schema, runner)
        service_paths[SVC_DIRECT] = direct_service
        graphql_paths[GQL_DIRECT_RUNNER] = lambda: run_graphql(schema, direct_runner)
        graphql_paths[GQL_INLINE] = lambda: inline_app_shell(deps.db, user_id)

        # Correctness first: every path serves the same screen.
        expected = await graphql_paths[GQL_KAILASH]()
        if len(expected["workspaces"]["edges"]) != WORKSPACES:
            raise RuntimeError(f"expected {WORKSPACES} workspaces: {expected}")
        for label, path in graphql_paths.items():
            if (got := await path()) != expected:
                raise RuntimeError(f"{label} differs:\n{got}\nvs\n{expected}")

        print(f"\n  SQL per AppShell query ({engine.dialect.name}):")
        with sql_trace(engine) as trace:
            await graphql_paths[GQL_KAILASH]()
        print_trace("through the schema (Kailash path)", trace, show=True)
        verdict = "as expected" if len(trace["statements"]) == 3 else "EXPECTED 3"
        print(f"  ({verdict}: the user by id, the workspace count, the page of workspaces)")
        with sql_trace(engine) as trace:
            await graphql_paths[GQL_INLINE]()
        print_trace("inline direct path (same statements, one session)", trace, show=False)
        if getattr(engine.pool, "_pre_ping", False):
            print("  (pool_pre_ping: each checkout also pings the server, unseen by the listener)")

        levels = [
            Level(
                "service", await measure(service_paths, args.iterations, args.warmup), SVC_DIRECT
            ),
            Level(
                "graphql", await measure(graphql_paths, args.iterations, args.warmup), GQL_INLINE
            ),
        ]

        if args.profile:
            calls = 2000
            print(f"\n  cProfile of {calls} x WorkflowRunner.call(LIST_MY_WORKSPACES):")
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(calls):
                await runner.call(LIST_MY_WORKSPACES, deps, first=None, after=None)
            profiler.disable()
            print_profile(profiler, calls)
    return levels, token


async def bench_http(base_url: str, token: str, iterations: int, warmup: int) -> Level:
    import httpx

    headers = {"authorization": f"Bearer {token}"}
    body = {"query": APP_SHELL, "operationName": "AppShell"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:

        async def graphql() -> dict[str, Any]:
            response = await client.post("/graphql", json=body)
            payload = response.json()
            if response.status_code != 200 or "errors" in payload:
                raise RuntimeError(f"/graphql: {response.status_code} {payload}")
            return payload["data"]  # type: ignore[no-any-return]

        async def direct() -> dict[str, Any]:
            response = await client.post("/bench/app-shell-direct", json=body)
            response.raise_for_status()
            return response.json()["data"]  # type: ignore[no-any-return]

        if await graphql() != await direct():
            raise RuntimeError("HTTP: /bench/app-shell-direct and /graphql disagree")
        samples = await measure({HTTP_KAILASH: graphql, HTTP_DIRECT: direct}, iterations, warmup)
    return Level("http", samples, HTTP_DIRECT)


def run_database(database_url: str, args: argparse.Namespace) -> list[Level]:
    settings = bench_settings(database_url)
    migrate.upgrade(settings.database_url)  # Alembic runs its own event loop: outside ours
    levels, token = asyncio.run(bench_in_process(settings, args))
    if args.http:
        from tests.support.live_server import live_server

        env = {
            "APP_ENV": "development",
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": "",
            "JWT_SECRET": BENCH_SECRET,
            "LOG_LEVEL": "WARNING",
            "UVICORN_ACCESS_LOG": "false",  # uvicorn reads its flags from UVICORN_* too
        }
        with live_server(env, app="bench.bench_app_shell:create_bench_app") as base_url:
            levels.append(asyncio.run(bench_http(base_url, token, args.iterations, args.warmup)))
    return levels


# --- report ------------------------------------------------------------------------------------


def print_table(database: str, levels: list[Level], iterations: int, warmup: int) -> None:
    print(
        f"\n{database}: ms per AppShell screen query; {iterations} timed runs per path, "
        f"interleaved, after {warmup} warm-up rounds; ratios are to the level's direct path"
    )
    header = (
        f"  {'level':<8} {'path':<38} {'p50':>7} {'p99':>7} {'mean':>7} "
        f"{'p50 ratio':>9} {'p99 ratio':>9}"
    )
    rule = "  " + "-" * (len(header) - 2)
    print(header)
    print(rule)
    for level in levels:
        base = level.samples[level.baseline]
        for label, values in level.samples.items():
            ratio = ""
            if label != level.baseline:
                ratio = (
                    f"{percentile(values, 50) / percentile(base, 50):8.2f}x "
                    f"{percentile(values, 99) / percentile(base, 99):8.2f}x"
                )
            print(
                f"  {level.name:<8} {label:<38} {percentile(values, 50):7.2f} "
                f"{percentile(values, 99):7.2f} {sum(values) / len(values) / 1e6:7.2f} {ratio}"
            )
        if GQL_DIRECT_RUNNER in level.samples:
            kailash, no_kailash = level.samples[GQL_KAILASH], level.samples[GQL_DIRECT_RUNNER]
            extra = percentile(kailash, 50) - percentile(no_kailash, 50)
            print(
                f"  {level.name:<8} {'Kailash share: kailash / DirectRunner':<38} "
                f"{f'(+{extra:.2f} ms at p50)':>23} "
                f"{percentile(kailash, 50) / percentile(no_kailash, 50):8.2f}x "
                f"{percentile(kailash, 99) / percentile(no_kailash, 99):8.2f}x"
            )
        print(rule)


def print_goal(results: dict[str, list[Level]]) -> None:
    print(
        f"\ngoal: the workflow path at most {GOAL_RATIO}x the direct path (p50), and its p50 "
        f"under {GOAL_SQLITE_P50_MS:g} ms on SQLite (reported, not asserted)"
    )
    for database, levels in results.items():
        for level in levels:
            base = percentile(level.samples[level.baseline], 50)
            for label, values in level.samples.items():
                if not label.startswith("kailash"):
                    continue
                p50 = percentile(values, 50)
                line = (
                    f"  {database:<8} {level.name:<8} {label:<38} {p50 / base:5.2f}x "
                    f"{'met' if p50 / base <= GOAL_RATIO else 'MISSED':<6}"
                )
                if database == "sqlite":
                    line += f" p50 {p50:5.2f} ms {'met' if p50 < GOAL_SQLITE_P50_MS else 'MISSED'}"
                print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--iterations", type=int, help="timed runs per path")
    parser.add_argument("--warmup", type=int, help="untimed runs per path first")
    add_size_flag(
        parser, quick={"iterations": 100, "warmup": 10}, full={"iterations": 500, "warmup": 50}
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--no-http", dest="http", action="store_false", help="skip the live uvicorn level"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile WorkflowRunner.call (SDK breakdown)"
    )
    args = apply_sizes(parser.parse_args(argv))
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be at least 1 and --warmup at least 0")
    started = time.monotonic()
    print(
        f"AppShell benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    results: dict[str, list[Level]] = {}
    if args.db in ("sqlite", "both"):
        print("\n== SQLite")
        with tempfile.TemporaryDirectory(prefix="kd-bench-") as tmp:
            results["sqlite"] = run_database(
                f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}", args
            )
    if args.db in ("postgres", "both"):
        from tests.support.services import postgres_server

        print("\n== PostgreSQL")
        try:
            with postgres_server() as url:
                results["postgres"] = run_database(url, args)
        except RuntimeError as exc:
            if args.db == "postgres":
                raise
            print(f"PostgreSQL skipped: {exc}")
    for database, levels in results.items():
        print_table(
            {"sqlite": "SQLite", "postgres": "PostgreSQL"}[database],
            levels,
            args.iterations,
            args.warmup,
        )
    print_goal(results)
    print(
        f"\nload average {os.getloadavg()[0]:.2f} at the end; "
        f"total wall time {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
