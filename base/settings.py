"""Application settings: read from the environment, validated once at start-up.

Nothing here is read at import time: `create_app(settings)` and the worker take a `Settings`
instance, and `get_settings()` builds the process default lazily.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from limits import parse
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_JWT_SECRET = "dev-insecure-secret-change-me-0123456789"
_DB_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class SettingsError(ValueError):
    """A setting is missing or unsafe; the message says which and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    app_env: Literal["development", "test", "production"] = Field(
        default="development", description="development, test or production."
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///var/knowledge-desk.sqlite3",
        description="SQLAlchemy URL; sqlite or postgresql (normalised to the async drivers).",
    )
    database_pooler: Literal["none", "pgbouncer"] = Field(
        default="none",
        description="What sits between the app and PostgreSQL. `pgbouncer`: a pooler in "
        "transaction mode, which hands each transaction to any server connection: no prepared "
        "statement outlives its transaction, none shares a name with another connection's, and "
        "no startup parameter is sent (ADR 0118).",
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; unset means the in-process event bus and runs."
    )
    jwt_secret: str = Field(default=DEFAULT_JWT_SECRET, min_length=32, repr=False)
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=60)
    download_link_ttl_seconds: int = Field(
        default=300, ge=10, le=3600, description="How long a link from createDownloadLink works."
    )
    invite_ttl_seconds: int = Field(default=7 * 86_400, ge=60)
    public_web_url: str = Field(
        default="http://127.0.0.1:8000", description="Base of links handed to users (invites)."
    )
    sign_in_attempts_per_account: str = Field(
        default="10/5minutes", description="Rate limit for sign-in per email (limits syntax)."
    )
    sign_in_attempts_per_address: str = Field(
        default="30/5minutes", description="Rate limit for sign-in per client address."
    )
    sign_up_attempts_per_address: str = Field(
        default="10/hour",
        description="Rate limit for sign-up per client address (each costs a password hash).",
    )
    # Kailash runtime caps: runtime-wide, so they must be sized for concurrent requests.
    workflow_max_concurrent_nodes: int = Field(default=1000, ge=1)
    workflow_thread_pool_size: int = Field(default=32, ge=1)
    workflow_execution_timeout_seconds: int = Field(
        default=600, ge=1, description="Limit of one execution of an API call's workflow."
    )
    run_execution_timeout_seconds: int = Field(
        default=21_600,
        ge=0,
        description="Limit of one execution of a run (runs can be cancelled); 0: none.",
    )
    # GraphQL limits
    graphql_max_depth: int = Field(default=12, ge=2)
    graphql_max_tokens: int = Field(default=5000, ge=100)
    graphql_max_fields: int = Field(
        default=2000, ge=10, description="Fields per document, every fragment spread expanded."
    )
    graphql_max_aliases: int = Field(default=100, ge=0, description="Aliases per document.")
    graphql_max_cost: int = Field(
        default=10_000,
        ge=100,
        description="Estimated cost per document: the most fields its response may hold, "
        "each list counting its page size (ADR 0020).",
    )
    graphql_introspection: bool | None = Field(
        default=None, description="Answer introspection; defaults to on outside production."
    )
    graphql_max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # GraphQL over WebSocket (graphql-transport-ws)
    graphql_ws_max_message_bytes: int = Field(
        default=65_536, ge=1024, description="Largest WebSocket message; a larger one closes 1009."
    )
    graphql_ws_init_timeout_seconds: float = Field(
        default=3.0, gt=0, le=60, description="Time a socket has to send connection_init (4408)."
    )
    graphql_ws_max_subscriptions: int = Field(
        default=100, ge=1, le=10_000, description="Operations open at once on one socket."
    )
    # Browsers on other origins (CORS); see docs/security.md#browsers-csrf-and-cors
    cors_allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Origins whose pages may call the API: comma-separated, e.g. "
        "https://app.example.com,http://localhost:5173. Empty: same origin only.",
    )
    mask_errors: bool | None = Field(
        default=None, description="Mask unexpected errors; defaults to on outside development."
    )
    # LLM (the Ollama HTTP API)
    ollama_host: str = Field(default="http://127.0.0.1:11434")
    chat_model: str = Field(default="smollm2:135m")
    embed_model: str = Field(
        default="all-minilm",
        description="Ollama's name for all-MiniLM-L6-v2 (384 dimensions); the local model server "
        "serves it under that name (ADR 0043).",
    )
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    # Runs
    run_execution: Literal["inline", "queue"] | None = Field(
        default=None,
        description="Where runs execute: in this process, or on workers via the Redis queue. "
        "Defaults to queue when REDIS_URL is set, else inline.",
    )
    run_lease_seconds: float = Field(
        default=15.0, ge=1, description="A run whose executor stops renewing this long is resumed."
    )
    run_stale_queued_seconds: float | None = Field(
        default=None,
        ge=1,
        description="A run QUEUED this long is taken by a sweeper (its enqueue may have been "
        "lost). Unset: max(30, 4 x RUN_LEASE_SECONDS).",
    )
    # Retention of finished runs and of the activity (ADR 0088); 0 keeps them forever.
    run_retention_days: float = Field(
        default=90,
        ge=0,
        description="Finished runs older than this are deleted with their steps and events, "
        "except the newest RUN_KEEP_PER_SUBJECT of each subject. 0: never.",
    )
    run_keep_per_subject: int = Field(
        default=10,
        ge=1,
        description="Finished runs of one subject (a document's processing history, a "
        "workspace's model checks) kept whatever their age.",
    )
    run_progress_retention_days: float = Field(
        default=7,
        ge=0,
        description="STEP_PROGRESS events of runs finished longer ago than this are deleted "
        "(the steps and their start and end events stay). 0: never.",
    )
    workspace_event_retention_days: float = Field(
        default=90,
        ge=0,
        description="Workspace events older than this are deleted, except the newest "
        "WORKSPACE_EVENTS_KEPT of each workspace. 0: never.",
    )
    workspace_events_kept: int = Field(
        default=100,
        ge=100,
        description="Workspace events of each workspace kept whatever their age (at least the "
        "100 that `activity(first:)` may ask for).",
    )
    retention_interval_seconds: float = Field(
        default=3600,
        ge=1,
        description="How often workers (or the API process in the embedded default) delete "
        "what is past its retention.",
    )
    reembed_check_seconds: float = Field(
        default=300,
        ge=1,
        description="How often each API process looks for READY documents without vectors of "
        "EMBED_MODEL (after a change of model) and queues a re-embedding run per workspace.",
    )
    reembed_retry_seconds: float = Field(
        default=3600,
        ge=0,
        description="After a re-embedding run of a workspace failed or was cancelled, how long "
        "before another is queued for it.",
    )
    event_stream_idle_seconds: float = Field(
        default=5.0,
        ge=0.1,
        le=300,
        description="A subscription that hears nothing for this long re-reads its log, and a "
        "run's stream ends there if the run has ended.",
    )
    workspace_progress_interval_seconds: float = Field(
        default=0.25,
        ge=0,
        le=60,
        description="At most one RUN_PROGRESS message per run per interval on the workspace's "
        "stream for progress within a step (step starts and ends always go); 0: every one.",
    )
    run_redeliver_after_seconds: float = Field(
        default=60.0, ge=1, description="Queue redelivery of unacknowledged run messages."
    )
    worker_concurrency: int = Field(
        default=10, ge=1, description="Runs one worker executes at once."
    )
    run_inline_concurrency: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="Runs the API process executes at once when runs are inline (no REDIS_URL); "
        "the others wait QUEUED for a slot, so a bulk upload cannot starve the API.",
    )
    worker_shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="On SIGTERM, how long running runs may finish first."
    )
    # Documents: originals and ingestion
    blob_root: str = Field(
        default="var/blobs",
        description="Directory of the content-addressed store of uploaded originals (ADR 0035).",
    )
    extraction_timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, description="A parser running longer than this is killed."
    )
    extraction_memory_mb: int = Field(
        default=1024, ge=64, le=16_384, description="Address space a parser may use."
    )
    upload_pdf_check_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="An upload opens each PDF in the isolated parser (password, structure) "
        "within this time, or refuses it with EXTRACTION_TIMEOUT.",
    )
    upload_max_files: int = Field(
        default=20, ge=1, le=1000, description="Files one upload request may carry (screen 6)."
    )
    upload_max_file_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1,
        le=2**40,
        description="Largest uploaded file, in bytes (also the largest pasted text).",
    )
    chunk_max_tokens: int = Field(
        default=200, ge=16, le=2048, description="Token budget of one chunk (ADR 0032)."
    )
    embed_batch_size: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Chunks per embedding request while ingesting; each batch is stored as it "
        "comes, so a retry continues after the last stored batch (ADR 0051).",
    )
    ingest_llm_input_tokens: int = Field(
        default=1000,
        ge=100,
        le=100_000,
        description="Estimated tokens of a document's text shown to the chat model to write its "
        "summary, key points, tags and entities: its first passages, then passages spread over "
        "the rest. Leave room for the prompt and the answer in the model's context (ADR 0052).",
    )
    ingest_llm_concurrency: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Model requests the ingestion steps of one process make at once; the others "
        "wait their turn in the process, so that waiting does not count against "
        "LLM_TIMEOUT_SECONDS. Raise it to what the model server serves in parallel (Ollama's "
        "OLLAMA_NUM_PARALLEL).",
    )
    ingest_llm_output_tokens: int = Field(
        default=400,
        ge=32,
        le=8192,
        description="Most tokens the chat model may write for one of those answers.",
    )
    model_check_max_tokens: int = Field(
        default=24, ge=1, le=4096, description="Tokens the model check asks the chat model for."
    )
    # Ask (screen 9): answers from the documents, with checked citations (ADRs 0070-0073)
    ask_context_tokens: int = Field(
        default=2048,
        ge=256,
        le=1_000_000,
        description="The chat model's context window in tokens: prompt and answer together "
        "(sent to Ollama as num_ctx).",
    )
    ask_answer_tokens: int = Field(
        default=256, ge=16, le=32_768, description="Most tokens an answer may have."
    )
    ask_history_tokens: int = Field(
        default=300,
        ge=0,
        le=100_000,
        description="Most prompt tokens spent on earlier turns of the conversation.",
    )
    ask_max_passages: int = Field(
        default=6, ge=1, le=50, description="Most passages numbered in a prompt."
    )
    ask_retrieve_passages: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Passages retrieved per question (the best are numbered in the prompt; "
        "all are kept, to show when no model answers).",
    )
    ask_min_cosine: float = Field(
        default=0.45,
        ge=-1,
        le=1,
        description="Abstain (NOT_IN_DOCUMENTS) when no passage in scope is at least this "
        "similar to the question (ADR 0072); Search answers `closeMatch: false` below it; an "
        "earlier question of a conversation that reached it alone began its subject (ADR 0123).",
    )
    ask_follow_up_min_cosine: float = Field(
        default=0.37,
        ge=-1,
        le=1,
        description="A later question of a conversation that reaches ASK_MIN_COSINE only "
        "together with the question before it is answered when alone it is at least this "
        "similar (ADR 0122); below, it abstains as a first question would.",
    )
    ask_citation_threshold: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="Fuzzy match a quote needs against its passage when it is not found "
        "exactly (difflib ratio, ADR 0071).",
    )
    ask_temperature: float = Field(
        default=0.0, ge=0, le=2, description="Sampling temperature of answers."
    )
    answer_stream_batch_seconds: float = Field(
        default=0.05,
        ge=0,
        le=5,
        description="Tokens of an answer are sent at most once per this interval (the first at "
        "once); 0: each as it comes (ADR 0073).",
    )
    # Search (ADRs 0061-0063)
    search_embed_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Longest wait for the embedding of a search query. Past it SEMANTIC answers "
        "MODEL_UNAVAILABLE and HYBRID answers keyword results flagged `degraded`.",
    )
    search_model_retry_seconds: float = Field(
        default=5.0,
        ge=0,
        le=600,
        description="After the embedding model failed a search, how long searches of this "
        "process go without asking it again (0: ask every time).",
    )
    search_max_results: int = Field(
        default=200,
        ge=10,
        le=1000,
        description="Documents one search ranks at most: the pages of a search end there.",
    )
    search_vector_cache_mb: int = Field(
        default=512,
        ge=0,
        le=262_144,
        description="Memory for the per-process cache of passage vectors (ADR 0061); the least "
        "recently searched workspaces are dropped beyond it. A workspace larger than all of it "
        "is searched by streaming its vectors from the database (exact, slower).",
    )
    search_vector_index: Literal["auto", "hnsw", "exact"] = Field(
        default="auto",
        description="How SEMANTIC search ranks passages (ADR 0114). `auto`: the exact scan of "
        "the process's cache when the workspace fits SEARCH_VECTOR_CACHE_MB, else pgvector's "
        "HNSW index where migration 0014 made one (PostgreSQL with the extension), else the "
        "vectors streamed from the database. `hnsw`: the index whenever there is one (no "
        "vectors in the API processes). `exact`: never the index (ADR 0061).",
    )
    search_partitions_min_passages: int = Field(
        default=20_000,
        ge=0,
        le=100_000_000,
        description="A workspace with at least this many cached passage vectors ranks its "
        "unfiltered semantic searches through an inverted-file index over them (faiss IVF, "
        "ADR 0147): approximate; the default probes scan about a tenth of the passages at "
        "20,000 and a fourteenth at 50,000. 0: always the exact scan.",
    )
    search_partitions_probed: int = Field(
        default=32,
        ge=1,
        le=100_000,
        description="Lists of that index a query scans (of about twice the square root of the "
        "passages). More finds more of the exact ranking, slower (ADR 0147).",
    )
    search_hnsw_ef_search: int = Field(
        default=200,
        ge=10,
        le=1000,
        description="pgvector's `hnsw.ef_search`: candidates the HNSW index keeps while it "
        "searches. Higher finds more of the exact ranking, slower (ADR 0114).",
    )
    search_scan_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="BLAS threads of a process for the vector scan's matrix product (ADR 0079). "
        "More than one lowers one scan's latency but the idle threads spin, taking CPU from "
        "concurrent requests; scale with processes instead.",
    )
    # Subscriptions
    access_recheck_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How often an open subscription re-checks that its user may still read the "
        "stream, before a live event (0: before every one).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO")
    # Metrics (ADR 0087)
    metrics_enabled: bool | None = Field(
        default=None,
        description="Serve GET /metrics (Prometheus text) on the API; defaults to on outside "
        "production. In production it needs METRICS_TOKEN.",
    )
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        repr=False,
        description="When set, GET /metrics requires `Authorization: Bearer <token>`.",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        description="A worker serves its metrics over HTTP on this port; unset: no metrics "
        "server. It has no token check: keep it on an internal address.",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the worker's metrics server binds (0.0.0.0 only on an internal "
        "network).",
    )

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise ValueError(f"DATABASE_URL must look like scheme://..., got {value!r}")
        driver = _DB_SCHEMES.get(scheme.lower())
        if driver is None:
            raise ValueError(
                f"DATABASE_URL has unknown scheme {scheme!r}; use sqlite+aiosqlite:// or "
                "postgresql+asyncpg://"
            )
        return f"{driver}://{rest}"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("ollama_host")
    @classmethod
    def _ollama_scheme(cls, value: str) -> str:
        # Ollama's own OLLAMA_HOST accepts host:port; the clients here need a URL.
        return value if "://" in value else f"http://{value}"

    @field_validator(
        "sign_in_attempts_per_account",
        "sign_in_attempts_per_address",
        "sign_up_attempts_per_address",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit such as 10/hour or 30/5minutes: {value!r}") from exc
        return value

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_allowed_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_origin(item) for item in value)

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _check_metrics_token(cls, value: object) -> object:
        if value == "":
            return None
        if isinstance(value, str) and (value != value.strip() or any(c.isspace() for c in value)):
            raise ValueError("METRICS_TOKEN must not contain spaces")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"REDIS_URL must start with redis://, rediss:// or unix://, got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if self.app_env != "development" and self.jwt_secret == DEFAULT_JWT_SECRET:
            raise ValueError(
                f"JWT_SECRET is the development default while APP_ENV={self.app_env}; "
                "set a random secret of at least 32 characters"
            )
        if self.app_env == "production" and self.metrics_enabled and not self.metrics_token:
            raise ValueError(
                "METRICS_ENABLED=true with APP_ENV=production needs METRICS_TOKEN (at least 16 "
                "characters): GET /metrics is on the API's public port"
            )
        if self.run_execution == "queue" and not self.redis_url:
            raise ValueError("RUN_EXECUTION=queue needs REDIS_URL (the queue lives in Redis)")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def runs_inline(self) -> bool:
        if self.run_execution is None:
            return self.redis_url is None
        return self.run_execution == "inline"

    @property
    def introspection_enabled(self) -> bool:
        if self.graphql_introspection is None:
            return self.app_env != "production"
        return self.graphql_introspection

    @property
    def upload_max_body_bytes(self) -> int:
        """The body limit of a multipart upload: every file at its largest, plus the
        operation itself (a JSON body keeps GRAPHQL_MAX_BODY_BYTES)."""
        return self.upload_max_files * self.upload_max_file_bytes + self.graphql_max_body_bytes

    @property
    def stale_queued_seconds(self) -> float:
        if self.run_stale_queued_seconds is not None:
            return self.run_stale_queued_seconds
        return max(30.0, 4 * self.run_lease_seconds)

    @property
    def serves_metrics(self) -> bool:
        if self.metrics_enabled is None:
            return self.app_env != "production"
        return self.metrics_enabled

    @property
    def should_mask_errors(self) -> bool:
        return self.app_env != "development" if self.mask_errors is None else self.mask_errors


def _origin(value: str) -> str:
    """A browser origin, `scheme://host[:port]`, in the lower case browsers send it in."""
    problem = (
        f"CORS_ALLOWED_ORIGINS takes origins like https://app.example.com "
        f"(scheme, host and optional port; no path, no wildcard), got {value!r}"
    )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(problem) from exc
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or "*" in value
        or parts.username is not None
        or parts.password is not None
        or parts.path
        or parts.query
        or parts.fragment
        or value.endswith(("?", "#"))
    ):
        raise ValueError(problem)
    host = parts.hostname.lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    scheme = parts.scheme.lower()
    default_port = {"http": 80, "https": 443}[scheme]  # browsers leave the default port out
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default_port) else "")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
