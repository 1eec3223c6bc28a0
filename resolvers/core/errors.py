"""The error model, written once.

* Mutations return `errors: [UserError!]!` in their payload; `as_payload` turns domain
  exceptions (and only those) into entries.
* Everything else becomes a top-level GraphQL error whose `extensions` carry a stable `code` and
  the `requestId`; unexpected exceptions are logged and, outside development, masked.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError

from base.errors import DomainError

log = logging.getLogger("knowledge_desk.errors")

PayloadT = TypeVar("PayloadT")


@strawberry.enum(description="Stable machine-readable error codes. New codes may be added.")
class ErrorCode(enum.Enum):
    INVALID = strawberry.enum_value("INVALID", description="The input is not acceptable.")
    REQUIRED = strawberry.enum_value("REQUIRED", description="A required value is empty.")
    TOO_LONG = strawberry.enum_value("TOO_LONG", description="A value is longer than allowed.")
    BAD_USER_INPUT = strawberry.enum_value(
        "BAD_USER_INPUT", description="An argument or variable has the wrong type or range."
    )
    INVALID_CURSOR = strawberry.enum_value(
        "INVALID_CURSOR", description="A pagination cursor is not valid for this list."
    )
    NOT_FOUND = strawberry.enum_value(
        "NOT_FOUND", description="No such object, or it is in a workspace you do not belong to."
    )
    FORBIDDEN = strawberry.enum_value(
        "FORBIDDEN", description="Your role in the workspace does not allow this."
    )
    CONFLICT = strawberry.enum_value("CONFLICT", description="The request conflicts with the data.")
    UNAUTHENTICATED = strawberry.enum_value("UNAUTHENTICATED", description="Sign in first.")
    INVALID_CREDENTIALS = strawberry.enum_value(
        "INVALID_CREDENTIALS", description="Wrong email or password (never says which)."
    )
    RATE_LIMITED = strawberry.enum_value("RATE_LIMITED", description="Too many attempts; wait.")
    TOKEN_INVALID = strawberry.enum_value("TOKEN_INVALID", description="The token is not valid.")
    TOKEN_EXPIRED = strawberry.enum_value("TOKEN_EXPIRED", description="The token has expired.")
    TOKEN_REUSED = strawberry.enum_value(
        "TOKEN_REUSED",
        description="A spent refresh token was presented; its whole family is now revoked.",
    )
    EMAIL_TAKEN = strawberry.enum_value("EMAIL_TAKEN", description="An account has this email.")
    INVALID_EMAIL = strawberry.enum_value("INVALID_EMAIL", description="Not an email address.")
    WEAK_PASSWORD = strawberry.enum_value(
        "WEAK_PASSWORD", description="The password is too short, too long or too easy to guess."
    )
    INVITE_INVALID = strawberry.enum_value("INVITE_INVALID", description="No such invite.")
    INVITE_EXPIRED = strawberry.enum_value("INVITE_EXPIRED", description="The invite expired.")
    INVITE_USED = strawberry.enum_value("INVITE_USED", description="The invite was used already.")
    INVITE_EMAIL_MISMATCH = strawberry.enum_value(
        "INVITE_EMAIL_MISMATCH", description="The invite was sent to another email address."
    )
    ALREADY_MEMBER = strawberry.enum_value(
        "ALREADY_MEMBER", description="The person is already a member of the workspace."
    )
    LAST_OWNER = strawberry.enum_value(
        "LAST_OWNER", description="The last OWNER cannot leave or be demoted."
    )
    RUN_FINISHED = strawberry.enum_value(
        "RUN_FINISHED", description="The run has already ended, so it cannot be cancelled."
    )
    RUN_NOT_RETRYABLE = strawberry.enum_value(
        "RUN_NOT_RETRYABLE", description="Only a FAILED run can be retried."
    )
    NAME_MISMATCH = strawberry.enum_value(
        "NAME_MISMATCH",
        description="The name typed to confirm is not the workspace's (deleteWorkspace).",
    )
    NAME_TAKEN = strawberry.enum_value(
        "NAME_TAKEN", description="The workspace already has a collection with this name."
    )
    COLLECTION_NOT_EMPTY = strawberry.enum_value(
        "COLLECTION_NOT_EMPTY",
        description="The collection holds documents (the message says how many); move or "
        "delete them first.",
    )
    DUPLICATE_DOCUMENT = strawberry.enum_value(
        "DUPLICATE_DOCUMENT",
        description="The collection already holds a document with the same content.",
    )
    TOO_MANY_FILES = strawberry.enum_value(
        "TOO_MANY_FILES",
        description="More files than one upload may carry (UPLOAD_MAX_FILES); nothing was kept.",
    )
    FILE_TOO_LARGE = strawberry.enum_value(
        "FILE_TOO_LARGE", description="The file is larger than UPLOAD_MAX_FILE_BYTES."
    )
    EMPTY_FILE = strawberry.enum_value("EMPTY_FILE", description="The file is empty.")
    UNSUPPORTED_TYPE = strawberry.enum_value(
        "UNSUPPORTED_TYPE",
        description="The file's bytes are not text, Markdown, HTML or PDF (whatever its name).",
    )
    UNDECODABLE_TEXT = strawberry.enum_value(
        "UNDECODABLE_TEXT", description="The text is in no character encoding that was recognised."
    )
    PDF_BROKEN = strawberry.enum_value(
        "PDF_BROKEN",
        description="The PDF is cut short (it ends before its end-of-file marker) or too damaged "
        "to open.",
    )
    PDF_ENCRYPTED = strawberry.enum_value(
        "PDF_ENCRYPTED", description="The PDF cannot be opened without a password."
    )
    EXTRACTION_TIMEOUT = strawberry.enum_value(
        "EXTRACTION_TIMEOUT",
        description="The isolated parser took longer than allowed to open the file.",
    )
    EXTRACTION_TOO_LARGE = strawberry.enum_value(
        "EXTRACTION_TOO_LARGE",
        description="The isolated parser needed more memory than allowed to open the file.",
    )
    EXTRACTION_FAILED = strawberry.enum_value(
        "EXTRACTION_FAILED", description="The isolated parser stopped while opening the file."
    )
    INVALID_FILE_NAME = strawberry.enum_value(
        "INVALID_FILE_NAME", description="The file has no usable name."
    )
    NOT_A_FILE = strawberry.enum_value(
        "NOT_A_FILE", description="Something other than a file was sent where a file belongs."
    )
    DOCUMENT_BUSY = strawberry.enum_value(
        "DOCUMENT_BUSY",
        description="The document is already queued or being processed; wait for its run.",
    )
    DOCUMENT_DELETED = strawberry.enum_value(
        "DOCUMENT_DELETED",
        description="A document's run: the document was deleted while it was being processed.",
    )
    DOCUMENT_CHANGED = strawberry.enum_value(
        "DOCUMENT_CHANGED",
        description="A document's run: another run replaced its passages meanwhile; reprocess.",
    )
    NOT_EXTRACTED = strawberry.enum_value(
        "NOT_EXTRACTED",
        description="A document's run: a step needs the text, which was never extracted.",
    )
    INVALID_EMBEDDING = strawberry.enum_value(
        "INVALID_EMBEDDING",
        description="A document's run: the embedding model returned a vector that cannot be "
        "stored (empty, not finite, or of mixed lengths).",
    )
    MODEL_UNAVAILABLE = strawberry.enum_value(
        "MODEL_UNAVAILABLE", description="The language model server is down or lacks the model."
    )
    MODEL_NOT_OFFERED = strawberry.enum_value(
        "MODEL_NOT_OFFERED",
        description="The model server does not offer the model named: pick one it lists.",
    )
    MODEL_CANNOT_CHAT = strawberry.enum_value(
        "MODEL_CANNOT_CHAT",
        description="The model named cannot chat (an embedding model): pick a chat model.",
    )
    ANSWER_IN_PROGRESS = strawberry.enum_value(
        "ANSWER_IN_PROGRESS",
        description="An answer of the conversation is still being written: wait or stop it.",
    )
    ANSWER_FINISHED = strawberry.enum_value(
        "ANSWER_FINISHED", description="The answer has already ended, so it cannot be stopped."
    )
    NOT_LAST_ANSWER = strawberry.enum_value(
        "NOT_LAST_ANSWER", description="Only the last answer of a conversation can be regenerated."
    )


# Codes that only ever appear in top-level `errors[].extensions.code` (not in the enum above).
TRANSPORT_CODES = (
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "OPERATION_NOT_FOUND",
    "QUERY_TOO_COMPLEX",
    "QUERY_TOO_COSTLY",
    "INTROSPECTION_DISABLED",
    "BAD_REQUEST",
    "PREFLIGHT_REQUIRED",
    "UNSUPPORTED_MEDIA_TYPE",
    "PAYLOAD_TOO_LARGE",
    "CORS_NOT_ALLOWED",
    "METHOD_NOT_ALLOWED",
    "TOO_MANY_SUBSCRIPTIONS",
    "INTERNAL",
)


@strawberry.type(description="An expected failure of a mutation, returned as data.")
class UserError:
    code: ErrorCode = strawberry.field(description="Stable machine-readable code.")
    message: str = strawberry.field(description="A message for people.")
    field: str | None = strawberry.field(
        description="The input field it concerns (camelCase, as in the input), if any."
    )

    @classmethod
    def from_domain(cls, error: DomainError) -> UserError:
        return cls(code=ErrorCode[error.code], message=error.message, field=error.field)


def annotate_errors(
    errors: list[GraphQLError],
    *,
    request_id: str,
    document_parsed: bool,
    mask: bool,
    max_tokens: int | None = None,
) -> None:
    """Give every top-level error a stable `code` and the `requestId`, in place."""
    for error in errors:
        original = error.original_error
        extensions: dict[str, Any] = {"requestId": request_id}
        if isinstance(original, DomainError):
            extensions["code"] = original.code
            if original.field:
                extensions["field"] = original.field
        elif original is None and not document_parsed:
            if "tokens. Parsing aborted" in error.message:  # MaxTokensLimiter
                extensions.update(code="QUERY_TOO_COMPLEX", limit="tokens")
                if max_tokens is not None:
                    extensions["max"] = max_tokens
            else:
                extensions["code"] = "GRAPHQL_PARSE_FAILED"
        elif error.path is None and (original is None or isinstance(original, GraphQLError)):
            # Document limits (which set their own code), validation and variable coercion
            # (which wraps the scalar's own GraphQLError).
            own = (error.extensions or {}).get("code")
            extensions["code"] = own if isinstance(own, str) else _pre_execution_code(error.message)
        else:
            extensions["code"] = "INTERNAL"
            log.error(
                "unexpected error in %s [request %s]",
                ".".join(map(str, error.path or [])) or "operation",
                request_id,
                exc_info=original or error,
            )
            if mask:
                error.message = "Unexpected error."
                error.original_error = None
        error.extensions = {**(error.extensions or {}), **extensions}


def _pre_execution_code(message: str) -> str:
    if message.startswith("Variable '$"):
        return "BAD_USER_INPUT"
    if message.startswith(("Unknown operation named", "Must provide operation name")):
        return "OPERATION_NOT_FOUND"
    return "GRAPHQL_VALIDATION_FAILED"


async def as_payload(
    payload: Callable[..., PayloadT], work: Awaitable[Mapping[str, Any]]
) -> PayloadT:
    """Build `payload(**result, errors=[])` from the awaited `work`, or the domain error as data."""
    try:
        return payload(**(await work), errors=[])
    except DomainError as error:
        return payload(errors=[UserError.from_domain(error)])
