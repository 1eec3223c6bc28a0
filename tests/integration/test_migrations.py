"""Migrations run up, down and up again on SQLite and PostgreSQL, with no drift from the models."""

import asyncio
import struct
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import insert, inspect
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app import migrate
from base.db.base import Base
from base.db.engine import build_sessionmaker
from base.models.accounts import User, Workspace
from base.models.documents import (
    TITLE_TRIGRAM_INDEX,
    Chunk,
    ChunkVector,
    Collection,
    Document,
    DocumentEntity,
    DocumentStatus,
)
from base.models.runs import Run, RunStatus, RunStep, StepStatus, SubjectType
from base.models.search import FULL_TEXT_INDEX, FULL_TEXT_TABLES
from services import fulltext, keyword_index
from services.search import allowed_documents
from services.search_text import HIGHLIGHT_END, HIGHLIGHT_START, marked_ranges, tsquery_text


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


def _round_trip(url: str) -> None:
    # The models' tables, and the full-text index the ORM does not describe (ADR 0050).
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    expected = {t.name for t in Base.metadata.sorted_tables} | FULL_TEXT_TABLES[dialect]
    migrate.upgrade(url)
    assert asyncio.run(_tables(url)) == expected | {"alembic_version"}
    migrate.check(url)  # raises when models and migrations differ
    migrate.downgrade(url, "base")
    assert asyncio.run(_tables(url)) == {"alembic_version"}
    migrate.upgrade(url)
    assert asyncio.run(_tables(url)) == expected | {"alembic_version"}


def test_sqlite_up_down_up_and_no_drift(tmp_path):
    _round_trip(f"sqlite+aiosqlite:///{tmp_path}/kd.sqlite3")


def _fresh_database(server_url: str) -> str:
    """The URL of a new, empty database `migrations_check` on the server."""

    async def create() -> None:
        connection = await asyncpg.connect(server_url)
        await connection.execute("DROP DATABASE IF EXISTS migrations_check")
        await connection.execute("CREATE DATABASE migrations_check")
        await connection.close()

    asyncio.run(create())
    base, _, _ = server_url.rpartition("/")
    return f"{base}/migrations_check".replace("postgresql://", "postgresql+asyncpg://")


@pytest.fixture
def fresh_postgres(postgres_url: str) -> str:
    return _fresh_database(postgres_url)


@pytest.fixture
def fresh_pgvector(pgvector_url: str) -> str:
    """A new database on the PostgreSQL that has pgvector (ADR 0114)."""
    return _fresh_database(pgvector_url)


def test_postgres_up_down_up_and_no_drift(fresh_postgres: str):
    _round_trip(fresh_postgres)
    assert asyncio.run(_title_index(fresh_postgres)) == (
        "CREATE INDEX ix_documents_title_trgm ON public.documents USING gin "
        "(lower((title)::text) gin_trgm_ops) WITH (fastupdate=off)"
    )
    migrate.downgrade(fresh_postgres, "0006")
    assert asyncio.run(_title_index(fresh_postgres)) is None
    migrate.upgrade(fresh_postgres)


def test_postgres_full_text_index_is_keyed_by_workspace(fresh_postgres: str):
    """Migration 0016 (ADR 0120) replaces the GIN index of the words alone by one of the
    workspace, then the words; its downgrade puts the first back."""
    migrate.upgrade(fresh_postgres)
    assert asyncio.run(_full_text_indexes(fresh_postgres)) == {
        "ix_chunk_search_workspace_id_search_vector": "USING gin (workspace_id, search_vector) "
        "WITH (fastupdate=off)",
    }
    migrate.downgrade(fresh_postgres, "0015")
    assert asyncio.run(_full_text_indexes(fresh_postgres)) == {
        "ix_chunk_search_search_vector": "USING gin (search_vector)",
    }
    migrate.upgrade(fresh_postgres)
    assert list(asyncio.run(_full_text_indexes(fresh_postgres))) == [FULL_TEXT_INDEX]


async def _full_text_indexes(url: str) -> dict[str, str]:
    """The GIN indexes of `chunk_search`: name -> method and columns."""
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(
            sql_text(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE tablename = 'chunk_search' AND indexdef LIKE '% USING gin %'"
            )
        )
        found = {name: "USING " + definition.split(" USING ", 1)[1] for name, definition in rows}
    await engine.dispose()
    return found


async def _title_index(url: str) -> object:
    """The definition of the titles' trigram index, which only a migration makes (ADR 0078)."""
    return await _fetch(
        url, "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_documents_title_trgm'"
    )


def test_postgres_reindexes_chunks_with_their_stop_words(fresh_postgres: str):
    """Migration 0011 indexes every chunk again under `english_with_stop_words` (ADR 0100), and
    its downgrade goes back to `english`."""
    migrate.upgrade(fresh_postgres, "0010")
    asyncio.run(_one_indexed_chunk(fresh_postgres, "with a statement, or not"))
    assert asyncio.run(_indexed_words(fresh_postgres)) == ["statement"]
    migrate.upgrade(fresh_postgres)
    assert asyncio.run(_indexed_words(fresh_postgres)) == ["a", "not", "or", "statement", "with"]
    migrate.downgrade(fresh_postgres, "0010")
    assert asyncio.run(_indexed_words(fresh_postgres)) == ["statement"]
    configurations = "SELECT count(*) FROM pg_ts_config WHERE cfgname = 'english_with_stop_words'"
    assert asyncio.run(_fetch(fresh_postgres, configurations)) == 0
    migrate.upgrade(fresh_postgres)


def test_postgres_fills_in_the_word_offsets_of_indexed_chunks(fresh_postgres: str):
    """Migration 0019 computes the word offsets of every chunk indexed before it (ADR 0141), so
    its highlights equal what `ts_headline` marks; its downgrade drops the table."""
    migrate.upgrade(fresh_postgres, "0018")
    text = "Built-in functions: os.path.join() runs the built-in join; run it twice."
    chunk = asyncio.run(_indexed_at_0018(fresh_postgres, text, ["Built-in Functions", "join"]))
    migrate.upgrade(fresh_postgres)
    terms = ["built", "join", "run"]
    ranges, marked = asyncio.run(_highlights_both_ways(fresh_postgres, chunk, terms))
    assert ranges == marked
    assert [text[s:e] for s, e in ranges] == ["Built", "join", "runs", "built", "join", "run"]
    migrate.downgrade(fresh_postgres, "0018")
    assert asyncio.run(_fetch(fresh_postgres, "SELECT to_regclass('chunk_word_offsets')")) is None
    migrate.upgrade(fresh_postgres)


def test_postgres_gin_indexes_write_in_place_without_pending_list(fresh_postgres: str):
    """Migration 0020 (ADR 0149) turns off the GIN indexes' pending list: a passage indexed and
    a document titled are in the indexes at once, and the lists pending before it are moved in.
    Its downgrade gives the indexes their default back."""
    migrate.upgrade(fresh_postgres, "0019")
    asyncio.run(_indexed_document(fresh_postgres, "Create a virtual environment with venv."))
    assert asyncio.run(_gin_state(fresh_postgres)) == {
        FULL_TEXT_INDEX: (None, 1),
        TITLE_TRIGRAM_INDEX: (None, 1),
    }
    migrate.upgrade(fresh_postgres)
    assert asyncio.run(_gin_state(fresh_postgres)) == {
        FULL_TEXT_INDEX: (["fastupdate=off"], 0),
        TITLE_TRIGRAM_INDEX: (["fastupdate=off"], 0),
    }
    asyncio.run(_indexed_document(fresh_postgres, "The pending list is read by every search."))
    assert asyncio.run(_gin_state(fresh_postgres)) == {
        FULL_TEXT_INDEX: (["fastupdate=off"], 0),
        TITLE_TRIGRAM_INDEX: (["fastupdate=off"], 0),
    }
    migrate.downgrade(fresh_postgres, "0019")
    assert asyncio.run(_gin_state(fresh_postgres)) == {
        FULL_TEXT_INDEX: (None, 0),
        TITLE_TRIGRAM_INDEX: (None, 0),
    }
    migrate.upgrade(fresh_postgres)


def test_postgres_reads_a_collection_filters_ids_from_one_index(fresh_postgres: str):
    """Migration 0021 (ADR 0154): the ids of a search's collection filter can come from an
    index alone (an index-only scan), where before each document was read from the table (an
    index scan, of whichever index); its downgrade drops the index. Sequential and bitmap scans
    are priced out, so the plan says which index can answer on these empty tables."""
    migrate.upgrade(fresh_postgres, "0020")
    assert asyncio.run(_collection_filter_scan(fresh_postgres)).startswith("Index Scan using ")
    migrate.upgrade(fresh_postgres)
    assert asyncio.run(_collection_filter_scan(fresh_postgres)) == (
        "Index Only Scan using ix_documents_workspace_collection on documents"
    )
    migrate.downgrade(fresh_postgres, "0020")
    assert asyncio.run(_collection_filter_scan(fresh_postgres)).startswith("Index Scan using ")
    migrate.upgrade(fresh_postgres)


async def _collection_filter_scan(url: str) -> str:
    """The scan of PostgreSQL's plan for `search.allowed_documents` of one collection."""
    statement = allowed_documents(uuid.uuid4(), collection_ids=[uuid.uuid4()])
    assert statement is not None
    sql = statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute("SET enable_seqscan = off")
        await connection.execute("SET enable_bitmapscan = off")
        plan = await connection.fetchval(f"EXPLAIN (COSTS OFF) {sql}")
    finally:
        await connection.close()
    return str(plan).split("  (")[0]


async def _indexed_document(url: str, text: str) -> None:
    """A document with one chunk of `text`, indexed by ingestion's INDEXING function."""
    engine = create_async_engine(url)
    async with build_sessionmaker(engine).begin() as session:
        _workspace, document, _chunk = await _add_one_chunk(session, text, ["Guide"])
        assert await fulltext.index_document(session, document) == 1
    await engine.dispose()


async def _gin_state(url: str) -> dict[str, tuple[list[str] | None, int]]:
    """Each GIN index of the schema: its storage options and how many entries it has pending
    (pgstattuple's reading of its metapage)."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        rows = await connection.fetch(
            "SELECT c.relname, c.reloptions, (pgstatginindex(c.oid)).pending_tuples "
            "FROM pg_class AS c JOIN pg_am AS am ON am.oid = c.relam "
            "WHERE am.amname = 'gin' AND c.relnamespace = 'public'::regnamespace"
        )
    finally:
        await connection.close()
    return {row["relname"]: (row["reloptions"], row["pending_tuples"]) for row in rows}


async def _indexed_at_0018(url: str, text: str, heading_path: list[str]) -> uuid.UUID:
    """A document with one chunk, indexed (headings and text) as revision 0018 did."""
    engine = create_async_engine(url)
    async with build_sessionmaker(engine).begin() as session:
        _workspace, _document, chunk = await _add_one_chunk(session, text, heading_path)
        await session.execute(
            sql_text(
                "INSERT INTO chunk_search (chunk_id, document_id, workspace_id, search_vector) "
                "SELECT c.id, c.document_id, c.workspace_id, "
                "setweight(to_tsvector('english_with_stop_words', translate(coalesce((SELECT "
                "string_agg(h, ' ') FROM json_array_elements_text(c.heading_path) AS h), ''), "
                "'./', '  ')), 'A') || setweight(to_tsvector('english_with_stop_words', "
                "translate(c.text, './', '  ')), 'B') FROM chunks AS c"
            )
        )
    await engine.dispose()
    return chunk


async def _highlights_both_ways(
    url: str, chunk: uuid.UUID, terms: list[str]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The chunk's matched ranges from the app's highlights and from `ts_headline`."""
    engine = create_async_engine(url)
    try:
        async with build_sessionmaker(engine)() as session:
            found = await keyword_index.highlights(session, terms, [chunk])
            row = (
                await session.execute(
                    sql_text(
                        "SELECT translate(text, './', '  ') AS indexed, ts_headline("
                        "'english_with_stop_words', translate(text, './', '  '), "
                        "to_tsquery('english_with_stop_words', :tsq), :options) AS marked "
                        "FROM chunks WHERE id = :id"
                    ),
                    {
                        "tsq": tsquery_text(terms),
                        "options": f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, "
                        "HighlightAll=true",
                        "id": chunk,
                    },
                )
            ).one()
    finally:
        await engine.dispose()
    return found.get(chunk, []), marked_ranges(row.marked, row.indexed)


async def _fetch(url: str, sql: str) -> object:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def _indexed_words(url: str) -> object:
    return await _fetch(url, "SELECT tsvector_to_array(search_vector) FROM chunk_search")


async def _add_documents(
    session: AsyncSession, documents: Sequence[tuple[uuid.UUID, str | None]]
) -> uuid.UUID:
    """A user, a workspace and a collection holding READY documents (id, original file name);
    the workspace's id. The models' tables are the same at revisions 0010-0011 and at the
    head, but for the workspace's later columns (migration 0017): it names only its own."""
    user, workspace, collection = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    session.add(User(id=user, email=f"m-{user.hex}@example.com", name="M", password_hash="x"))
    await session.flush()
    await session.execute(insert(Workspace).values(id=workspace, name="W", created_by_id=user))
    session.add(Collection(id=collection, workspace_id=workspace, name="C"))
    await session.flush()
    for document_id, filename in documents:
        session.add(
            Document(
                id=document_id,
                workspace_id=workspace,
                collection_id=collection,
                title="D",
                status=DocumentStatus.READY,
                content_type="text/plain",
                original_filename=filename,
                content_sha256=document_id.hex * 2,
            )
        )
    await session.flush()
    return workspace


async def _add_one_chunk(
    session: AsyncSession, text: str, heading_path: list[str]
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A READY document with one chunk of `text`: (workspace, document, chunk)."""
    document, chunk = uuid.uuid4(), uuid.uuid4()
    workspace = await _add_documents(session, [(document, None)])
    session.add(
        Chunk(
            id=chunk,
            document_id=document,
            workspace_id=workspace,
            position=0,
            text=text,
            heading_path=heading_path,
            char_start=0,
            char_end=len(text),
            token_count=6,
        )
    )
    await session.flush()
    return workspace, document, chunk


async def _one_indexed_chunk(url: str, text: str) -> None:
    """A document with one chunk, indexed as revision 0010 did."""
    engine = create_async_engine(url)
    async with build_sessionmaker(engine).begin() as session:
        await _add_one_chunk(session, text, [])
        await session.execute(
            sql_text(
                "INSERT INTO chunk_search (chunk_id, document_id, workspace_id, search_vector) "
                "SELECT id, document_id, workspace_id, "
                "setweight(to_tsvector('english', text), 'B') FROM chunks"
            )
        )
    await engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_field_sources_are_filled_in_for_existing_documents(
    database: str, tmp_path, request: pytest.FixtureRequest
):
    """Migration 0012 records what can be known of documents processed before it (ADR 0103):
    the title's source from how the document came, the summary, key points and tags from the
    newest finished step of their ingestion, entities as the model's where there are any."""
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/kd.sqlite3"
        if database == "sqlite"
        else request.getfixturevalue("fresh_postgres")
    )
    migrate.upgrade(url, "0011")
    uploaded, pasted, deleted_run_subject = asyncio.run(_processed_before_sources(url))
    migrate.upgrade(url)
    assert asyncio.run(_recorded_sources(url)) == sorted(
        [
            (uploaded, "TITLE", "FILE"),
            (uploaded, "SUMMARY", "MODEL"),  # the newer of its two SUMMARIZING steps
            (uploaded, "KEY_POINTS", "MODEL"),
            (uploaded, "TAGS", "TEXT"),
            (uploaded, "ENTITIES", "MODEL"),
            (pasted, "TITLE", "PERSON"),
            (pasted, "SUMMARY", "TEXT"),
            (pasted, "KEY_POINTS", "TEXT"),
        ]
    )
    assert deleted_run_subject not in {row[0] for row in asyncio.run(_recorded_sources(url))}
    migrate.downgrade(url, "0011")
    migrate.upgrade(url)


async def _processed_before_sources(url: str) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """An uploaded document (two ingestions: the newer summary by the model, tags from the
    text, one entity), a pasted one (its summary from the text, TAGGING never finished), and a
    run whose document was deleted."""
    engine = create_async_engine(url)
    uploaded, pasted, gone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    async with build_sessionmaker(engine).begin() as session:
        workspace = await _add_documents(session, [(uploaded, "venv.html"), (pasted, None)])
        session.add(DocumentEntity(document_id=uploaded, position=0, name="Python", kind="PRODUCT"))
        steps = [
            (uploaded, at, "SUMMARIZING", StepStatus.SUCCEEDED, "extractive"),
            (uploaded, at + timedelta(hours=1), "SUMMARIZING", StepStatus.SUCCEEDED, "model"),
            (uploaded, at, "TAGGING", StepStatus.SUCCEEDED, "extractive"),
            (pasted, at, "SUMMARIZING", StepStatus.SUCCEEDED, "extractive"),
            (pasted, at + timedelta(hours=1), "TAGGING", StepStatus.FAILED, None),
            (gone, at, "SUMMARIZING", StepStatus.SUCCEEDED, "model"),
        ]
        for subject, finished_at, name, status, source in steps:
            run = Run(
                id=uuid.uuid4(),
                workspace_id=workspace,
                workflow="ingest_document",
                subject_type=SubjectType.DOCUMENT,
                subject_id=subject,
                subject_label="D",
                status=RunStatus.SUCCEEDED,
            )
            session.add(run)
            await session.flush()
            session.add(
                RunStep(
                    run_id=run.id,
                    position=4,
                    name=name,
                    status=status,
                    finished_at=finished_at,
                    output={"source": source} if source else None,
                )
            )
    await engine.dispose()
    return uploaded, pasted, gone


async def _recorded_sources(url: str) -> list[tuple[uuid.UUID, str, str]]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(
            sql_text("SELECT document_id, field, source FROM document_field_sources")
        )
        found = sorted((uuid.UUID(str(d)), f, s) for d, f, s in rows)
    await engine.dispose()
    return found


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_vectors_of_the_text_alone_are_deleted_and_the_passages_kept(
    database: str, tmp_path, request: pytest.FixtureRequest
):
    """Migration 0013 deletes the vectors made from a passage's text alone (ADR 0113), so the
    re-embedding check makes them again; the passages stay, and the deletion is counted in
    `vector_versions`, which tells each API process's vector cache to drop them."""
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/kd.sqlite3"
        if database == "sqlite"
        else request.getfixturevalue("fresh_postgres")
    )
    migrate.upgrade(url, "0012")
    asyncio.run(_one_vector(url, [0.0, 0.0]))
    assert asyncio.run(_vector_counts(url)) == (1, 1, 0)
    migrate.upgrade(url)
    assert asyncio.run(_vector_counts(url)) == (1, 0, 1)
    migrate.downgrade(url, "0012")
    assert asyncio.run(_vector_counts(url)) == (1, 0, 1)


async def _vector_counts(url: str) -> tuple[int, int, int]:
    """(passages, vectors, vectors deleted as `vector_versions` counts them)."""
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        passages = (await connection.execute(sql_text("SELECT count(*) FROM chunks"))).scalar()
        stored = (await connection.execute(sql_text("SELECT count(*) FROM chunk_vectors"))).scalar()
        deleted = (
            await connection.execute(
                sql_text("SELECT coalesce(sum(deletions), 0) FROM vector_versions")
            )
        ).scalar()
    await engine.dispose()
    return int(passages or 0), int(stored or 0), int(deleted or 0)


# float32 values the copy into pgvector's column must keep exactly: signs, zeros, the largest and
# smallest normal values, subnormals, and real embedding-sized values.
EXACT_VALUES = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    -0.3333333,
    3.4028235e38,
    -1.1754944e-38,
    1e-45,
    -7.006e-45,
    2.5e-40,
    0.046875,
    -0.0123456789,
    123456.789,
]


def test_pgvector_columns_and_index_where_the_extension_is_present(fresh_pgvector: str):
    """Migration 0014 on a PostgreSQL with pgvector (ADR 0114): the vectors stored before it are
    copied into `embedding` exactly, new and updated vectors follow by the trigger, the HNSW
    index exists; up, down and up again with no drift."""
    _round_trip(fresh_pgvector)
    migrate.downgrade(fresh_pgvector, "0013")
    assert asyncio.run(_pgvector_objects(fresh_pgvector)) == (0, 0, 0)
    before = asyncio.run(_one_vector(fresh_pgvector, EXACT_VALUES))
    migrate.upgrade(fresh_pgvector)
    assert asyncio.run(_pgvector_objects(fresh_pgvector)) == (1, 1, 1)
    assert asyncio.run(_embedding(fresh_pgvector, before)) == _as_float32(EXACT_VALUES)
    after = asyncio.run(_one_vector(fresh_pgvector, list(reversed(EXACT_VALUES))))
    assert asyncio.run(_embedding(fresh_pgvector, after)) == _as_float32(
        list(reversed(EXACT_VALUES))
    )
    changed = [v / 2 for v in EXACT_VALUES]
    asyncio.run(_set_vector(fresh_pgvector, after, changed))
    assert asyncio.run(_embedding(fresh_pgvector, after)) == _as_float32(changed)
    # The vectors themselves are the migration's to keep: 0013 and back leaves them as they were.
    migrate.downgrade(fresh_pgvector, "0013")
    assert asyncio.run(_pgvector_objects(fresh_pgvector)) == (0, 0, 0)
    assert asyncio.run(_stored(fresh_pgvector, before)) == _as_float32(EXACT_VALUES)
    migrate.upgrade(fresh_pgvector)
    assert asyncio.run(_embedding(fresh_pgvector, after)) == _as_float32(changed)


def test_without_pgvector_the_vectors_table_is_unchanged(fresh_postgres: str):
    """Debian's PostgreSQL 15 has no pgvector: migration 0014 adds nothing there."""
    migrate.upgrade(fresh_postgres)
    assert asyncio.run(_pgvector_objects(fresh_postgres)) == (0, 0, 0)


def _as_float32(values: Sequence[float]) -> list[float]:
    return [float(struct.unpack("<f", struct.pack("<f", v))[0]) for v in values]


async def _pgvector_objects(url: str) -> tuple[int, int, int]:
    """How many of: the `embedding` column, its trigger, the HNSW index of 384 dimensions."""
    column = await _fetch(
        url,
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_name = 'chunk_vectors' AND column_name = 'embedding'",
    )
    trigger = await _fetch(
        url, "SELECT count(*) FROM pg_trigger WHERE tgname = 'chunk_vectors_embedding'"
    )
    index = await _fetch(
        url,
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_chunk_vectors_embedding_384' "
        "AND indexdef LIKE '%USING hnsw%vector_cosine_ops%'",
    )
    return int(str(column)), int(str(trigger)), int(str(index))


async def _one_vector(url: str, values: Sequence[float]) -> uuid.UUID:
    """A passage with a stored vector of `values` (float32 bytes, as ingestion stores them)."""
    engine = create_async_engine(url)
    async with build_sessionmaker(engine).begin() as session:
        workspace, document, chunk = await _add_one_chunk(session, "Passage.", ["Page"])
        session.add(
            ChunkVector(
                chunk_id=chunk,
                document_id=document,
                workspace_id=workspace,
                model="all-minilm",
                dimension=len(values),
                vector=struct.pack(f"<{len(values)}f", *values),
            )
        )
    await engine.dispose()
    return chunk


async def _set_vector(url: str, chunk: uuid.UUID, values: Sequence[float]) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            sql_text("UPDATE chunk_vectors SET vector = :v WHERE chunk_id = :c"),
            {"v": struct.pack(f"<{len(values)}f", *values), "c": chunk},
        )
    await engine.dispose()


async def _embedding(url: str, chunk: uuid.UUID) -> list[float]:
    """pgvector's column of the passage, read back as text (shortest exact float32 digits)."""
    text_ = await _fetch(
        url, f"SELECT embedding::text FROM chunk_vectors WHERE chunk_id = '{chunk}'"
    )
    return _as_float32([float(v) for v in str(text_).strip("[]").split(",")])


async def _stored(url: str, chunk: uuid.UUID) -> list[float]:
    packed = await _fetch(url, f"SELECT vector FROM chunk_vectors WHERE chunk_id = '{chunk}'")
    assert isinstance(packed, bytes)
    return [float(v) for v in struct.unpack(f"<{len(packed) // 4}f", packed)]


@pytest.mark.parametrize("database", ["sqlite", "postgresql", "pgvector"])
def test_documents_get_the_mean_of_their_passage_vectors(
    database: str, tmp_path, request: pytest.FixtureRequest
):
    """Migration 0015 (ADR 0116) gives each document its own vector per model: the normalised
    mean of its passages' unit vectors. On pgvector its rows get `embedding` by a trigger and the
    documents' HNSW index; the downgrade drops the table and its function."""
    url = {
        "sqlite": lambda: f"sqlite+aiosqlite:///{tmp_path}/kd.sqlite3",
        "postgresql": lambda: request.getfixturevalue("fresh_postgres"),
        "pgvector": lambda: request.getfixturevalue("fresh_pgvector"),
    }[database]()
    migrate.upgrade(url, "0014")
    asyncio.run(_document_with_vectors(url))
    migrate.upgrade(url)
    # [3, 4] and [0, 2] are [0.6, 0.8] and [0, 1] as unit vectors: their sum is [0.6, 1.8].
    norm = (0.6**2 + 1.8**2) ** 0.5
    expected = {"all-minilm": _as_float32([0.6 / norm, 1.8 / norm]), "other": [1.0, 0.0]}
    assert asyncio.run(_document_vectors(url)) == expected
    if database == "pgvector":
        embedded = asyncio.run(
            _fetch_rows(url, "SELECT model, embedding::text FROM document_vectors ORDER BY model")
        )
        assert [
            (m, _as_float32([float(v) for v in str(e).strip("[]").split(",")])) for m, e in embedded
        ] == [
            ("all-minilm", expected["all-minilm"]),
            ("other", expected["other"]),
        ]
        index = asyncio.run(
            _fetch(
                url,
                "SELECT count(*) FROM pg_indexes WHERE indexname = "
                "'ix_document_vectors_embedding_384' AND indexdef LIKE '%USING hnsw%'",
            )
        )
        assert index == 1
    migrate.downgrade(url, "0014")
    assert "document_vectors" not in asyncio.run(_tables(url))
    if database != "sqlite":
        function = "SELECT count(*) FROM pg_proc WHERE proname = 'document_vectors_embedding'"
        assert asyncio.run(_fetch(url, function)) == 0


async def _document_with_vectors(url: str) -> None:
    """A document with two passages whose all-minilm vectors are [3, 4] and [0, 2], and another
    document whose one passage has [5, 0] of another model."""
    engine = create_async_engine(url)
    async with build_sessionmaker(engine).begin() as session:
        workspace, document, first = await _add_one_chunk(session, "First.", [])
        second = uuid.uuid4()
        session.add(
            Chunk(
                id=second,
                document_id=document,
                workspace_id=workspace,
                position=1,
                text="Second.",
                heading_path=[],
                char_start=7,
                char_end=14,
                token_count=2,
            )
        )
        other_workspace, other_document, other = await _add_one_chunk(session, "Other.", [])
        for chunk, owner, model, values in (
            (first, (workspace, document), "all-minilm", [3.0, 4.0]),
            (second, (workspace, document), "all-minilm", [0.0, 2.0]),
            (other, (other_workspace, other_document), "other", [5.0, 0.0]),
        ):
            session.add(
                ChunkVector(
                    chunk_id=chunk,
                    workspace_id=owner[0],
                    document_id=owner[1],
                    model=model,
                    dimension=2,
                    vector=struct.pack("<2f", *values),
                )
            )
    await engine.dispose()


async def _document_vectors(url: str) -> dict[str, list[float]]:
    """Each stored document vector's values, by model."""
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                sql_text("SELECT model, dimension, vector FROM document_vectors")
            )
        ).all()
    await engine.dispose()
    return {m: list(struct.unpack(f"<{d}f", v)) for m, d, v in rows}


async def _fetch_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await connection.fetch(sql)]
    finally:
        await connection.close()
