"""All SQLAlchemy models; importing this package registers every table on Base.metadata."""

from base.models.accounts import Invite, Membership, RefreshToken, Role, User, Workspace
from base.models.documents import (
    Chunk,
    ChunkVector,
    Collection,
    Document,
    DocumentEntity,
    DocumentField,
    DocumentFieldEdit,
    DocumentStage,
    DocumentStatus,
    DocumentTag,
    EntityKind,
)
from base.models.retrieval import VectorVersion
from base.models.runs import (
    Run,
    RunEvent,
    RunStatus,
    RunStep,
    StepStatus,
    SubjectType,
    WorkspaceEvent,
)

__all__ = [
    "Chunk",
    "ChunkVector",
    "Collection",
    "Document",
    "DocumentEntity",
    "DocumentField",
    "DocumentFieldEdit",
    "DocumentStage",
    "DocumentStatus",
    "DocumentTag",
    "EntityKind",
    "Invite",
    "Membership",
    "RefreshToken",
    "Role",
    "Run",
    "RunEvent",
    "RunStatus",
    "RunStep",
    "StepStatus",
    "SubjectType",
    "User",
    "VectorVersion",
    "Workspace",
    "WorkspaceEvent",
]
