"""The ingestion run on real documents, on PostgreSQL and on SQLite, with the real model server:
every stage writes what it should, the document follows its run, and a bad file fails alone at
its stage with its code."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from base.models.documents import (
    MAX_ENTITY_NAME,
    MAX_TAG,
    Chunk,
    ChunkVector,
    Document,
    DocumentEntity,
    DocumentFieldEdit,
    DocumentTag,
    EntityKind,
)
from services import fulltext, llm, vectors
from services.chunking import EMBEDDING_HEADER_MIN_PASSAGE_TOKENS, chunk, embedding_text
from services.documents import MAX_ENTITIES, MAX_KEY_POINT, MAX_KEY_POINTS, MAX_SUMMARY, MAX_TAGS
from services.extraction import extract
from tests.integration.ingestion.conftest import library_of
from tests.support import corpus
from tests.support.ingest import (
    GETPASS_HTML,
    STAGES,
    TTY_HTML,
    WITH_EXTRACTED_TEXT,
    add_document,
    counts,
    finished_run,
    full_text_rows,
    pdf_pages,
    start_ingestion,
    step_statuses,
)

# The model's work is sized small, but a CPU-only model server shared with other work can take
# minutes for it; the suite's 300 s default would cut a slow but sound run short.
pytestmark = [pytest.mark.timeout(900), pytest.mark.slow(seconds=180)]


async def model_dimension(settings) -> int:
    [vector] = await llm.embed(
        ["dimension"], model=settings.embed_model, config=llm.LLMConfig.from_settings(settings)
    )
    return len(vector)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


REAL_FILES = {
    "getpass.html": (corpus.read(GETPASS_HTML), "text/html"),
    "tty.html": (corpus.read(TTY_HTML), "text/html"),
    "README.md": (corpus.read(corpus.POSTGRES_README_MD), "text/markdown"),
    "shared-mime-info-spec.pdf": (pdf_pages(corpus.MIME_SPEC_PDF, 2), "application/pdf"),
}


async def test_real_documents_are_ingested_to_ready(any_db_client, any_db_app, any_db_settings):
    deps = any_db_app.state.deps
    library = await library_of(any_db_client, any_db_app)
    documents = {
        name: await add_document(
            deps, library.workspace_id, library.collection_id, library.owner_id, data, name
        )
        for name, (data, _type) in REAL_FILES.items()
    }
    run_ids = {
        name: await start_ingestion(deps, document_id, library.owner_id)
        for name, document_id in documents.items()
    }
    ended = await asyncio.gather(*(finished_run(deps, r) for r in run_ids.values()))
    assert [(r.status.value, r.error_code) for r in ended] == [("SUCCEEDED", None)] * 4
    dimension = await model_dimension(any_db_settings)

    for name, document_id in documents.items():
        data, media_type = REAL_FILES[name]
        assert await step_statuses(deps, run_ids[name]) == dict.fromkeys(STAGES, "SUCCEEDED")
        expected = extract(data, name)
        budget = any_db_settings.chunk_max_tokens
        pieces = chunk(expected.text, expected.headings, max_tokens=budget)
        async with deps.db() as session:
            document = await session.get(Document, document_id, options=WITH_EXTRACTED_TEXT)
            stored = (
                (
                    await session.execute(
                        select(Chunk)
                        .where(Chunk.document_id == document_id)
                        .order_by(Chunk.position)
                    )
                )
                .scalars()
                .all()
            )
            stored_vectors = (
                (
                    await session.execute(
                        select(ChunkVector).where(ChunkVector.document_id == document_id)
                    )
                )
                .scalars()
                .all()
            )
            tags = (
                (
                    await session.execute(
                        select(DocumentTag.tag)
                        .where(DocumentTag.document_id == document_id)
                        .order_by(DocumentTag.position)
                    )
                )
                .scalars()
                .all()
            )
            entities = (
                (
                    await session.execute(
                        select(DocumentEntity).where(DocumentEntity.document_id == document_id)
                    )
                )
                .scalars()
                .all()
            )
            edits = await session.scalar(
                select(func.count())
                .select_from(DocumentFieldEdit)
                .where(DocumentFieldEdit.document_id == document_id)
            )
        assert document is not None
        assert (document.status.value, document.stage, document.error_code) == (
            "READY",
            None,
            None,
        )
        # EXTRACTING: the text, headings, type, words and language; the title from the text
        # replaces the file name the upload gave.
        assert document.text == expected.text
        assert document.headings == [[h.level, h.title, h.offset] for h in expected.headings]
        assert (document.content_type, document.word_count, document.language) == (
            media_type,
            expected.word_count,
            "en",
        )
        assert document.title == expected.title
        # CHUNKING: exactly the chunks of `chunk()` on the same text.
        assert [(c.position, c.text, c.char_start, c.char_end) for c in stored] == [
            (p.position, p.text, p.char_start, p.char_end) for p in pieces
        ]
        assert [tuple(c.heading_path) for c in stored] == [p.heading_path for p in pieces]
        # INDEXING: one full-text row per chunk, and a word of a chunk finds that chunk.
        assert await full_text_rows(deps.db, document_id) == len(pieces)
        last = stored[-1]
        word = max(fulltext._WORD.findall(last.text), key=len)
        async with deps.db() as session:
            found = await fulltext.matching_chunk_ids(
                session, workspace_id=library.workspace_id, query=word, limit=100
            )
        assert last.id in found, (name, word)
        # EMBEDDING: one vector per chunk, of the settings' model, with its dimension.
        assert sorted(v.chunk_id for v in stored_vectors) == sorted(c.id for c in stored)
        assert {(v.model, v.dimension) for v in stored_vectors} == {
            (any_db_settings.embed_model, dimension)
        }
        assert all(len(vectors.unpack(v.vector, dimension)) == dimension for v in stored_vectors)
        # Each vector is the model's for the passage's heading path, then its text (ADR 0113),
        # not for its text alone; a passage under no heading (or a short one) as it is.
        headed = [
            c
            for c in stored
            if c.heading_path and c.token_count >= EMBEDDING_HEADER_MIN_PASSAGE_TOKENS
        ]
        assert bool(headed) == (media_type != "application/pdf"), name
        passage = headed[0] if headed else stored[0]
        [stored_vector] = [v for v in stored_vectors if v.chunk_id == passage.id]
        with_path, text_alone = await llm.embed(
            [embedding_text(passage.heading_path, passage.text), passage.text],
            model=any_db_settings.embed_model,
            config=llm.LLMConfig.from_settings(any_db_settings),
        )
        made = vectors.unpack(stored_vector.vector, dimension)
        assert cosine(made, with_path) > 0.9999, name
        if headed:
            assert cosine(made, text_alone) < 0.999, name
        # SUMMARIZING and TAGGING: present and within the limits people's edits have, and
        # marked as the AI's (no edit rows).
        assert document.summary and len(document.summary) <= MAX_SUMMARY
        assert 1 <= len(document.key_points) <= MAX_KEY_POINTS
        assert all(0 < len(p) <= MAX_KEY_POINT for p in document.key_points)
        assert 1 <= len(tags) <= MAX_TAGS
        assert all(0 < len(t) <= MAX_TAG for t in tags)
        assert len({t.casefold() for t in tags}) == len(tags)
        assert len(entities) <= MAX_ENTITIES
        assert all(0 < len(e.name) <= MAX_ENTITY_NAME for e in entities)
        assert {EntityKind(e.kind) for e in entities} <= set(EntityKind)
        assert edits == 0


async def test_a_broken_pdf_fails_at_extracting_and_nothing_after_runs(any_db_client, any_db_app):
    deps = any_db_app.state.deps
    library = await library_of(any_db_client, any_db_app)
    pdf = corpus.read(corpus.BZIP2_PDF)
    document_id = await add_document(
        deps,
        library.workspace_id,
        library.collection_id,
        library.owner_id,
        pdf[: len(pdf) // 2],
        "manual.pdf",
    )
    run = await finished_run(deps, await start_ingestion(deps, document_id, library.owner_id))
    assert (run.status.value, run.error_code) == ("FAILED", "PDF_BROKEN")
    assert await step_statuses(deps, run.id) == {
        "EXTRACTING": "FAILED",
        **dict.fromkeys(STAGES[1:], "CANCELLED"),
    }
    async with deps.db() as session:
        document = await session.get(Document, document_id, options=WITH_EXTRACTED_TEXT)
    assert document is not None
    assert (document.status.value, document.stage.value, document.error_code) == (
        "FAILED",
        "EXTRACTING",
        "PDF_BROKEN",
    )
    assert document.error_message == (
        "The PDF is damaged or incomplete. (it ends before its end-of-file marker)"
    )
    assert (document.text, document.headings, document.word_count) == (None, None, None)
    assert document.title == "manual.pdf"
    assert await counts(deps, document_id) == {"chunks": 0, "vectors": 0}
    assert await full_text_rows(deps.db, document_id) == 0
