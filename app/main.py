"""The app factory: `uvicorn --factory app.main:create_app`.

This is the composition root of the API process, so it is the one module of `app` that imports
the GraphQL layer (`resolvers`); the worker never does.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.downloads import mount_downloads
from app.http import CORS, BodySizeLimit, WebSocketMessageLimit, http_error, unexpected_error
from app.logs import configure_logging
from app.maintenance import start_upkeep
from app.metrics import mount_metrics
from base.db.engine import build_engine, build_read_sessionmaker, build_sessionmaker
from base.events.bus import build_bus
from base.metrics import ProcessGauges, RunQueueProbe
from base.settings import Settings, SettingsError, get_settings
from resolvers.core.measure import named_operations
from resolvers.router import DirectGraphQL, KnowledgeDeskRouter
from resolvers.schema import build_schema
from runtime.process import start_api_runs
from runtime.queue import GROUP, QUEUE
from runtime.runner import WorkflowRunner, build_runtime
from services.deps import ServiceDeps
from services.llm import aclose_clients
from services.ratelimit import AttemptLimiter
from services.vector_index import limit_scan_threads
from workflows import RUN_WORKFLOWS

ROOT = Path(__file__).resolve().parent.parent
GRAPHQL_PATH = "/graphql"
log = logging.getLogger("knowledge_desk")
_frozen = False
# Allocations between two collections of the youngest generation (CPython's default: 700).
# A request allocates several thousand objects, nearly all freed by reference counting before a
# collection would look at them: at 10,000, the screens spend 3.5-6% less CPU and a young
# collection pauses about 5 ms (ADR 0098).
YOUNG_COLLECTION_THRESHOLD = 10_000


def tune_garbage_collection() -> None:
    """Once per process: `gc.freeze()` and the young generation's threshold.

    Freezing keeps what the first start-up made (it lives as long as the process) out of every
    full collection: with many subscriptions open, those pauses reached half a second. Once, not
    at every start: an app started later in the same process (tests, a second app) would
    otherwise freeze the garbage of the ones before it, which then is never collected and never
    finalised. The older generations keep their thresholds.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, oldest)


async def check_redis(url: str) -> None:
    client = redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        raise SettingsError(f"REDIS_URL={url} is unreachable: {exc}") from exc
    finally:
        await client.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.redis_url:
            await check_redis(settings.redis_url)
        limit_scan_threads(settings.search_scan_threads)
        engine = build_engine(settings)
        runtime = build_runtime(settings)  # inside the loop: the SDK binds to it
        runner = WorkflowRunner(runtime)
        bus = build_bus(settings.redis_url)
        await bus.start()
        deps = ServiceDeps(
            settings=settings,
            db=build_sessionmaker(engine),
            attempts=AttemptLimiter.build(settings),
            bus=bus,
        )
        runs = await start_api_runs(deps, runtime, RUN_WORKFLOWS)
        app.state.engine = engine
        app.state.read_db = build_read_sessionmaker(engine, settings)
        app.state.runner = runner
        app.state.runs = runs
        app.state.deps = dataclasses.replace(deps, launcher=runs.launcher)
        app.state.metrics_gauges = ProcessGauges(
            bus=bus,
            engine=engine,
            queue=RunQueueProbe(settings.redis_url, QUEUE, GROUP) if settings.redis_url else None,
        )
        upkeep = start_upkeep(app.state.deps, engine)
        tune_garbage_collection()
        try:
            yield
        finally:
            await upkeep.stop()  # before the engine closes: a job in progress still uses it
            await app.state.metrics_gauges.aclose()
            await runs.close()
            await runner.close()
            await aclose_clients()  # the LLM clients the runs shared (services/llm.py)
            await bus.close()
            await engine.dispose()

    app = FastAPI(
        title="Knowledge Desk", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.settings = settings
    app.state.schema = build_schema(settings)
    router = KnowledgeDeskRouter(
        app.state.schema,
        graphiql_html=_graphiql(app),
        settings=settings,
        operation_names=named_operations(ROOT / "graphql" / "operations"),
    )
    # Outermost last: CORS sees every request first (and adds its headers to every answer).
    app.add_middleware(DirectGraphQL, router=router, path=GRAPHQL_PATH)
    app.add_middleware(WebSocketMessageLimit, max_bytes=settings.graphql_ws_max_message_bytes)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.graphql_max_body_bytes,
        multipart_max_bytes=settings.upload_max_body_bytes,
    )
    app.add_middleware(CORS, allow_origins=settings.cors_allowed_origins)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
    app.include_router(router, prefix=GRAPHQL_PATH)

    mount_downloads(app)
    if settings.serves_metrics:
        mount_metrics(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Liveness and readiness: the process serves and its database answers."""
        async with app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    return app


def _graphiql(app: FastAPI) -> str | None:
    """GraphiQL's page with its assets served by the app (no CDN), when the assets are installed."""
    from app.graphiql import graphiql_page, mount_graphiql_assets

    try:
        mount_graphiql_assets(app, ROOT / "web")
    except RuntimeError as exc:  # `make web` not run: serve the API without the IDE, say why
        log.warning("GraphiQL disabled: %s", exc)
        return None
    return graphiql_page()
