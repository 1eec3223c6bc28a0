"""Collections, documents, their tags, entities, per-field edit marks and sources, and chunks.

A document keeps its extracted text (`text`) and the AI-written fields (summary, key points,
tags, entities). A person's edit of one of those fields is recorded in `document_field_edits`
(who, when), one row per field, and reprocessing leaves an edited field alone (ADR 0034).
`document_field_sources` says who or what wrote each value as processing or upload left it:
the model, the text itself (a fallback), the file, or the person who pasted it (ADR 0103).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from base.db.base import Base, UUIDPrimaryKey
from base.db.types import UTCDateTime, utcnow

MAX_TITLE = 300
MAX_TAG = 100
MAX_ENTITY_NAME = 200


class DocumentStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"


class DocumentStage(enum.StrEnum):
    EXTRACTING = "EXTRACTING"
    CHUNKING = "CHUNKING"
    INDEXING = "INDEXING"
    EMBEDDING = "EMBEDDING"
    SUMMARIZING = "SUMMARIZING"
    TAGGING = "TAGGING"


class EntityKind(enum.StrEnum):
    PERSON = "PERSON"
    ORGANIZATION = "ORGANIZATION"
    PLACE = "PLACE"
    PRODUCT = "PRODUCT"
    OTHER = "OTHER"


class DocumentField(enum.StrEnum):
    """The fields the AI writes and a person may edit."""

    TITLE = "TITLE"
    SUMMARY = "SUMMARY"
    KEY_POINTS = "KEY_POINTS"
    TAGS = "TAGS"
    ENTITIES = "ENTITIES"


class FieldSource(enum.StrEnum):
    """Who or what wrote a field's value (ADR 0103)."""

    PERSON = "PERSON"  # typed by a person: an edit, or the title given with pasted text
    MODEL = "MODEL"  # written by the chat model
    TEXT = "TEXT"  # taken from the document's text when the model's reply was unusable
    FILE = "FILE"  # the title from the file: its name, HTML title or PDF metadata


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=16)


class Collection(UUIDPrimaryKey, Base):
    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# PostgreSQL only, made by its migration and not described here: trigrams of lower(title), so
# that the documents list's titleContains (`LIKE '%...%'`) is an index search and the planner
# knows how many titles match (ADR 0078); no pending list (migration 0020, ADR 0149).
TITLE_TRIGRAM_INDEX = "ix_documents_title_trgm"


class Document(UUIDPrimaryKey, Base):
    __tablename__ = "documents"
    __table_args__ = (
        # Duplicate detection: the same content once per collection.
        UniqueConstraint("collection_id", "content_sha256"),
        # The list's sorts (each ends with the id, the cursor's tie-breaker) and filters.
        Index("ix_documents_workspace_updated", "workspace_id", "updated_at", "id"),
        Index("ix_documents_workspace_created", "workspace_id", "created_at", "id"),
        Index("ix_documents_workspace_title", "workspace_id", "title", "id"),
        Index("ix_documents_workspace_status", "workspace_id", "status"),
        Index("ix_documents_collection_updated", "collection_id", "updated_at"),
        # A filter's document ids (search and answers) read from the index alone.
        Index("ix_documents_workspace_collection", "workspace_id", "collection_id", "id"),
        Index("ix_documents_owner_id", "owner_id"),
        # Whether anything still references a blob (its release after a delete, the sweep).
        Index("ix_documents_content_sha256", "content_sha256"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    # RESTRICT: a collection is deleted only when empty (the service says how many it holds).
    collection_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("collections.id", ondelete="RESTRICT")
    )
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(MAX_TITLE))
    status: Mapped[DocumentStatus] = mapped_column(_enum(DocumentStatus, "document_status"))
    stage: Mapped[DocumentStage | None] = mapped_column(
        _enum(DocumentStage, "document_stage"), default=None
    )
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(String(1000), default=None)
    content_type: Mapped[str] = mapped_column(String(100))
    original_filename: Mapped[str | None] = mapped_column(String(500), default=None)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    content_sha256: Mapped[str] = mapped_column(String(64))
    word_count: Mapped[int | None] = mapped_column(Integer, default=None)
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    summary: Mapped[str | None] = mapped_column(Text, default=None)
    key_points: Mapped[list[str]] = mapped_column(JSON, default=list)
    # CHUNKING's input, written by EXTRACTING: the extracted text (kilobytes to megabytes), and
    # its headings, [[level, title, offset], ...] with offsets into `text`, so a retry that
    # resumes at CHUNKING needs no re-extraction. Neither is part of a document's view, so a
    # read leaves them in the database unless it asks for them (`undefer`, as CHUNKING does);
    # reading one that was not asked for raises instead of loading it.
    text: Mapped[str | None] = mapped_column(
        Text, default=None, deferred=True, deferred_raiseload=True
    )
    headings: Mapped[list[Any] | None] = mapped_column(
        JSON, default=None, deferred=True, deferred_raiseload=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentTag(Base):
    __tablename__ = "document_tags"
    __table_args__ = (Index("ix_document_tags_tag", "tag", "document_id"),)

    document_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(MAX_TAG))


class DocumentEntity(Base):
    __tablename__ = "document_entities"

    document_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_ENTITY_NAME))
    kind: Mapped[EntityKind] = mapped_column(_enum(EntityKind, "document_entity_kind"))


class DocumentFieldEdit(Base):
    """A person edited this field of the document (the latest edit: who and when)."""

    __tablename__ = "document_field_edits"

    document_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[DocumentField] = mapped_column(
        _enum(DocumentField, "document_field"), primary_key=True
    )
    edited_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    edited_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentFieldSource(Base):
    """Who or what wrote the value a field holds, as processing or upload left it; a person's
    edit (DocumentFieldEdit) takes precedence when reading."""

    __tablename__ = "document_field_sources"

    document_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[DocumentField] = mapped_column(
        _enum(DocumentField, "document_field"), primary_key=True
    )
    source: Mapped[FieldSource] = mapped_column(_enum(FieldSource, "field_source"))


class Chunk(UUIDPrimaryKey, Base):
    """A passage of a document's text, in order. Its full-text row is in `chunk_search` (outside
    the ORM: a different shape per database, ADR 0050) and its vector in `chunk_vectors`."""

    __tablename__ = "chunks"
    __table_args__ = (
        UniqueConstraint("document_id", "position"),
        Index("ix_chunks_workspace_id", "workspace_id"),
    )

    document_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("documents.id", ondelete="CASCADE")
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    heading_path: Mapped[list[Any]] = mapped_column(JSON, default=list)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    token_count: Mapped[int] = mapped_column(Integer)


# PostgreSQL with pgvector only, made by migrations 0014 (`chunk_vectors`) and 0015
# (`document_vectors`) and not described here: `embedding`, the stored vector as pgvector's type
# (kept equal to `vector` by a trigger), and an HNSW index of the rows of each indexed dimension,
# named by the prefix and the dimension (ADRs 0114, 0116).
PGVECTOR_COLUMN = "embedding"
PGVECTOR_INDEX_PREFIX = "ix_chunk_vectors_embedding_"
DOCUMENT_PGVECTOR_INDEX_PREFIX = "ix_document_vectors_embedding_"
PGVECTOR_TABLES = ("chunk_vectors", "document_vectors")


class ChunkVector(Base):
    """The embedding of one chunk (ADR 0051): float32 little-endian bytes of `dimension` values,
    from the embedding model named `model`. One row per chunk; the workspace is repeated so that
    a semantic search reads one workspace's vectors of one model through one index.

    `seq` numbers the workspace's vectors of one model in commit order; a trigger sets it from
    `vector_versions` (ADR 0061, migration 0005), so an insert leaves it out."""

    __tablename__ = "chunk_vectors"
    __table_args__ = (
        Index("ix_chunk_vectors_document_id", "document_id"),
        Index("ix_chunk_vectors_workspace_model_seq", "workspace_id", "model", "seq"),
    )

    chunk_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("documents.id", ondelete="CASCADE")
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    model: Mapped[str] = mapped_column(String(200))
    dimension: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    seq: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class DocumentVector(Base):
    """A document's vector for related documents (ADR 0116): the normalised mean of its passages'
    unit vectors of `model`, stored as `chunk_vectors` stores them. Written by EMBEDDING once
    every passage has its vector, deleted when the passages are cut again."""

    __tablename__ = "document_vectors"
    __table_args__ = (Index("ix_document_vectors_workspace_model", "workspace_id", "model"),)

    document_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    dimension: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
