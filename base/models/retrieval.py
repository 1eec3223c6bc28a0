"""Where semantic search learns that a workspace's vectors changed (ADR 0061).

One row per workspace and embedding model. Triggers on `chunk_vectors` (migration 0005) keep it
current: an inserted vector increments `version` and takes it as its `seq`; a deleted vector
(cascades included) increments `version` and `deletions`. The row lock taken by the increment
makes the numbering follow commit order, so a reader that has loaded every vector up to
`version` V is current until the row says otherwise.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from base.db.base import Base


class VectorVersion(Base):
    __tablename__ = "vector_versions"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    deletions: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
