"""Documents made searchable for the search tests, through the ingestion's own steps.

`indexed_document` stores a READY document whose text is given (real text from the corpus), then
runs the ingestion steps that make it searchable, CHUNKING, INDEXING and EMBEDDING (the real
embedding model of the settings), skipping EXTRACTING (the text is given) and the chat-model
steps (search does not read their output).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from base.models.documents import Chunk, Document, DocumentStatus, DocumentTag
from services import ingestion
from services.deps import ServiceDeps
from services.extraction import extract
from tests.support import corpus


def page_text(relative: str) -> tuple[str, str, list[list[object]]]:
    """The title, text and headings ([level, title, offset]) of a page of the Python
    documentation, as extraction reads them."""
    extracted = extract(corpus.read(corpus.HTML_ROOT / relative), relative.rsplit("/", 1)[-1])
    headings = [[h.level, h.title, h.offset] for h in extracted.headings]
    return extracted.title or relative, extracted.text, headings


async def indexed_document(
    deps: ServiceDeps,
    *,
    workspace_id: uuid.UUID,
    collection_id: uuid.UUID,
    owner_id: uuid.UUID,
    title: str,
    text: str,
    headings: Sequence[Sequence[object]] = (),
    tags: Sequence[str] = (),
    embed: bool = True,
) -> uuid.UUID:
    """A READY document with `text`, chunked, indexed and (when `embed`) embedded."""
    document = Document(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        collection_id=collection_id,
        owner_id=owner_id,
        title=title,
        status=DocumentStatus.QUEUED,
        content_type="text/html",
        original_filename=None,
        size_bytes=len(text.encode()),
        content_sha256=uuid.uuid4().hex * 2,
        text=text,
        headings=[list(h) for h in headings],
        word_count=len(text.split()),
        language="en",
    )
    async with deps.db.begin() as session:
        session.add(document)
        session.add_all(
            DocumentTag(document_id=document.id, position=n, tag=tag) for n, tag in enumerate(tags)
        )
    await ingestion.chunking_step(deps, document_id=str(document.id))
    await ingestion.indexing(deps, document_id=str(document.id))
    if embed:
        await ingestion.embedding(deps, document_id=str(document.id))
    async with deps.db.begin() as session:
        stored = await session.get(Document, document.id)
        assert stored is not None
        stored.status = DocumentStatus.READY
        stored.stage = None
    return document.id


async def page_document(
    deps: ServiceDeps,
    relative: str,
    *,
    workspace_id: uuid.UUID,
    collection_id: uuid.UUID,
    owner_id: uuid.UUID,
    tags: Sequence[str] = (),
    embed: bool = True,
) -> uuid.UUID:
    """`indexed_document` of a page of the Python documentation."""
    title, text, headings = page_text(relative)
    return await indexed_document(
        deps,
        workspace_id=workspace_id,
        collection_id=collection_id,
        owner_id=owner_id,
        title=title,
        text=text,
        headings=headings,
        tags=tags,
        embed=embed,
    )


async def chunk_texts(deps: ServiceDeps, document_id: uuid.UUID) -> dict[uuid.UUID, str]:
    async with deps.db() as session:
        rows = await session.execute(
            select(Chunk.id, Chunk.text).where(Chunk.document_id == document_id)
        )
        return dict(rows.all())
