"""Every argument of every query and mutation the frontend sends, given hostile values, on
PostgreSQL and SQLite: each answer is HTTP 200 or 400 with a stable code, never a 5xx and never
`INTERNAL`.

The frontend's own operations (graphql/operations) are sent with a valid set of variables, then
with one leaf of those variables at a time replaced by each hostile value of its type: empty and
blank text, 100,000 characters, astral and bidirectional characters, a template and SQL and LIKE
syntax; ids that are empty, not base64, of another type, of no row, or 10,000 characters long;
the extremes of a 32-bit Int; an empty list, a list with one id twice, and 1,000 ids. Values the
GraphQL layer itself refuses (a String where an Int goes, a null where none may be) have their
own tests (tests/e2e/test_api_e2e.py); subscriptions and uploads too (the socket and multipart
tests).
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    OperationDefinitionNode,
    OperationType,
    parse,
    type_from_ast,
)
from sqlalchemy import func, select
from strawberry import relay

from base.models.runs import Run, RunStatus
from tests.support.graphql import OPERATIONS, GraphQLClient, first_workspace, operation, sign_up
from tests.support.seed import (
    add_collection,
    add_documents,
    add_members,
    add_runs,
    global_id,
    uuid_of,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow(seconds=50)

LONG = "x" * 100_000
HOSTILE_STRINGS = [
    "",
    "   ",
    LONG,
    "\U0001f600" * 5_000,
    "\u202egnp.exe",
    "${workspaceId}",
    "' OR '1'='1' --",
    "%_\\",
    '"unclosed * NEAR ( :',
    "\ufeff\u200b\u2028",
    "\u0130stanbul STRASSE \ufb01le \u0301",  # case mappings that change the length
    "!" * 10_000,
]
HOSTILE_INTS = [-1, 0, 2_147_483_647, -2_147_483_648]
HOSTILE_FLOATS = [-1.0, 0.0, 1e308]


def hostile_ids(valid: str) -> list[str]:
    type_name = relay.GlobalID.from_id(valid).type_name if valid else "Document"
    return [
        "",
        "not base64!",
        global_id(type_name, uuid.uuid4()),  # no such row
        global_id("Workspace" if type_name != "Workspace" else "Document", uuid_of(valid))
        if valid
        else "V29ya3NwYWNlOg==",
        "RG9jdW1lbnQ6bm90LWEtdXVpZA==",  # Document:not-a-uuid
        str(uuid.uuid4()),  # a raw uuid, not a global id
        "x" * 10_000,
    ]


def _leaf(graphql_type: Any) -> Any:
    while isinstance(graphql_type, GraphQLNonNull | GraphQLList):
        graphql_type = graphql_type.of_type
    return graphql_type


def _nullable(graphql_type: Any) -> Any:
    return graphql_type.of_type if isinstance(graphql_type, GraphQLNonNull) else graphql_type


class Fixture:
    """The rows the valid variables name."""

    def __init__(self, **ids: str) -> None:
        self.ids = ids

    def id_for(self, name: str) -> str:
        key = name.lower()
        if key == "id":
            key = ""
        for suffix in ("ids", "id"):
            if key.endswith(suffix) and key != suffix:
                key = key[: -len(suffix)]
                break
        return self.ids.get(key, self.ids["document"])

    def for_operation(self, operation_name: str) -> Fixture:
        """`id` alone names the operation's own kind of row."""
        kinds = {
            "Conversation": "conversation",
            "RenameConversation": "conversation",
            "DeleteConversation": "conversation",
            "UpdateCollection": "collection",
            "DeleteCollection": "collection",
        }
        kind = kinds.get(operation_name, "document")
        return Fixture(**{**self.ids, "": self.ids[kind]})


def valid_value(graphql_type: Any, name: str, fixture: Fixture) -> Any:
    nullable = _nullable(graphql_type)
    if isinstance(nullable, GraphQLList):
        return [valid_value(nullable.of_type, name, fixture)]
    if isinstance(nullable, GraphQLInputObjectType):
        return {
            field_name: valid_value(field.type, field_name, fixture)
            for field_name, field in nullable.fields.items()
            if isinstance(field.type, GraphQLNonNull) or field_name in _OPTIONAL_FILLED
        }
    if isinstance(nullable, GraphQLEnumType):
        return next(iter(nullable.values))
    assert isinstance(nullable, GraphQLScalarType)
    if nullable.name == "ID":
        return fixture.id_for(name)
    if nullable.name == "Int":
        return 5
    if nullable.name == "Float":
        return 0.5
    if nullable.name == "Boolean":
        return False
    if nullable.name == "String":
        return None if name.lower().endswith("after") else _TEXT.get(name, "a probe")
    return None


# Optional input fields worth probing too (they reach filters and text columns).
_OPTIONAL_FILLED = {
    "filter",
    "titleContains",
    "tag",
    "tags",
    "description",
    "summary",
    "title",
    "keyPoints",
    "reason",
    "collectionIds",
    "ownerId",
    "startsWith",
    "after",
    "first",
}
_TEXT = {"email": "probe@example.com", "password": "a long pass phrase"}


def variants(graphql_type: Any, value: Any, name: str) -> Iterator[Any]:
    """Hostile replacements of `value` (a valid value of `graphql_type`), one leaf at a time."""
    nullable = _nullable(graphql_type)
    if isinstance(nullable, GraphQLList):
        yield []
        if value:
            yield [value[0], value[0]]
            if _leaf(nullable).name == "ID":
                yield [value[0]] * 1_000
            for hostile in variants(nullable.of_type, value[0], name):
                yield [hostile]
        return
    if isinstance(nullable, GraphQLInputObjectType):
        for field_name, field in nullable.fields.items():
            current = value.get(field_name) if isinstance(value, dict) else None
            if current is None:
                current = valid_value(field.type, field_name, _ANY)
            for hostile in variants(field.type, current, field_name):
                yield {**(value or {}), field_name: hostile}
        return
    if isinstance(nullable, GraphQLScalarType):
        if nullable.name == "ID":
            yield from hostile_ids(value if isinstance(value, str) else "")
        elif nullable.name == "String":
            yield from HOSTILE_STRINGS
        elif nullable.name == "Int":
            yield from HOSTILE_INTS
        elif nullable.name == "Float":
            yield from HOSTILE_FLOATS


_ANY = Fixture(document="")


# What a valid request of these operations may answer in the probe's workspace: a state, not a
# mistaken id (a finished run, a collection holding a document, the shared answer still being
# written or, later in the probe, ended).
EXPECTED_STATES = {
    "AcceptInvite": {"INVITE_INVALID"},
    "AskQuestion": {"ANSWER_IN_PROGRESS"},
    "CancelRun": {"RUN_FINISHED"},
    "DeleteCollection": {"COLLECTION_NOT_EMPTY"},
    "RateAnswer": {"ANSWER_IN_PROGRESS"},
    "RegenerateAnswer": {"ANSWER_IN_PROGRESS"},
    "RetryRun": {"RUN_NOT_RETRYABLE"},
    "SignIn": {"INVALID_CREDENTIALS"},
    "StopAnswer": {"ANSWER_FINISHED"},
    "UploadDocuments": {"BAD_USER_INPUT"},  # no files: uploads have their own tests
}


def operations() -> list[tuple[str, OperationDefinitionNode]]:
    found = []
    for path in sorted(OPERATIONS.glob("*.graphql")):
        definition = parse(path.read_text()).definitions[0]
        assert isinstance(definition, OperationDefinitionNode)
        if definition.operation != OperationType.SUBSCRIPTION and definition.variable_definitions:
            found.append((path.stem, definition))
    return found


def _codes(body: dict[str, Any]) -> list[str]:
    codes = [e.get("extensions", {}).get("code", "") for e in body.get("errors") or []]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "code" in node and "message" in node:
                codes.append(node["code"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(body.get("data"))
    return codes


async def _shared_rows(client: GraphQLClient, app: Any, owner: dict[str, Any]) -> dict[str, str]:
    """A member, an answer being written, and a pending invite: made once (one answer run in
    the background, not one per operation)."""
    token = owner["accessToken"]
    workspace = await first_workspace(client, token)
    await add_members(app.state.deps.db, uuid_of(workspace["id"]), 1, prefix="member")
    members = await client.op("WorkspaceMembers", {"workspaceId": workspace["id"]}, token=token)
    [member] = [
        e["node"]["id"]
        for e in members["workspace"]["members"]["edges"]
        if e["node"]["role"] == "VIEWER"
    ]
    created = await client.op(
        "CreateConversation", {"input": {"workspaceId": workspace["id"]}}, token=token
    )
    conversation = created["createConversation"]["conversation"]["id"]
    asked = await client.op(
        "AskQuestion",
        {"input": {"conversationId": conversation, "question": "What is a venv?"}},
        token=token,
    )
    invited = await client.op(
        "InviteMember",
        {
            "input": {
                "workspaceId": workspace["id"],
                "email": "invited@example.com",
                "role": "VIEWER",
            }
        },
        token=token,
    )
    return {
        "workspace": workspace["id"],
        "owner": owner["user"]["id"],
        "member": member,
        "conversation": conversation,
        "message": asked["askQuestion"]["answer"]["id"],
        "invite": invited["inviteMember"]["invite"]["id"],
    }


async def _fixture(client: GraphQLClient, app: Any, shared: dict[str, str], token: str) -> Fixture:
    """The shared rows and a collection, a document, a run and a conversation of its own for
    each operation: a destructive one (DeleteDocuments, DeleteConversation) leaves the next
    its own."""
    workspace_id, owner_id = uuid_of(shared["workspace"]), uuid_of(shared["owner"])
    db = app.state.deps.db
    collection = await add_collection(db, workspace_id, f"Guides {uuid.uuid4()}", owner_id)
    [document] = await add_documents(db, workspace_id, [collection], [owner_id], 1, tags=("a",))
    [run] = await add_runs(db, workspace_id, [owner_id], 1)
    created = await client.op(
        "CreateConversation", {"input": {"workspaceId": shared["workspace"]}}, token=token
    )
    return Fixture(
        **{**shared, "conversation": created["createConversation"]["conversation"]["id"]},
        collection=global_id("Collection", collection),
        document=global_id("Document", document),
        run=global_id("Run", run),
    )


async def _runs_ended(app: Any) -> bool:
    async with app.state.deps.db() as session:
        active = await session.execute(
            select(func.count())
            .select_from(Run)
            .where(Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
        )
        return active.scalar_one() == 0


# The runs the probe starts (an answer, the ingestion of accepted text documents) fail at once
# without a model; the probe waits for them to end before the app stops.
@pytest.mark.settings(ollama_host="http://127.0.0.1:9")
async def test_hostile_argument_values_never_fail_as_internal(
    any_db_client: GraphQLClient, any_db_app: Any
) -> None:
    client = any_db_client
    owner = await sign_up(client, "Owner", "owner@example.com")
    token = owner["accessToken"]
    schema = any_db_app.state.schema._schema
    shared = await _shared_rows(client, any_db_app, owner)
    failures: list[str] = []
    sent = 0
    for name, definition in operations():
        if name in ("SignOut", "DeleteWorkspace", "RefreshToken"):
            continue  # they end the probe's session or workspace; their own tests cover them
        fixture = (await _fixture(client, any_db_app, shared, token)).for_operation(name)
        variables = {
            v.variable.name.value: valid_value(
                type_from_ast(schema, v.type), v.variable.name.value, fixture
            )
            for v in definition.variable_definitions
        }
        # The valid variables reach the services (an id mistaken here would stop every probe
        # of the operation at NOT_FOUND before the value probed is read).
        baseline = await client.post(operation(name), variables, token=token)
        assert baseline.status_code == 200, baseline.text
        assert set(_codes(baseline.json())) <= EXPECTED_STATES.get(name, set()), baseline.text
        for definition_variable in definition.variable_definitions:
            var_name = definition_variable.variable.name.value
            var_type = type_from_ast(schema, definition_variable.type)
            for hostile in variants(var_type, variables[var_name], var_name):
                sent += 1
                response = await client.post(
                    operation(name), {**variables, var_name: hostile}, token=token
                )
                if response.status_code >= 500:
                    failures.append(
                        f"{name} {var_name}={str(hostile)[:80]!r}: {response.status_code}"
                    )
                    continue
                codes = _codes(response.json()) if response.status_code == 200 else []
                if "INTERNAL" in codes or "" in codes:
                    failures.append(
                        f"{name} {var_name}={str(hostile)[:80]!r}: {response.text[:300]}"
                    )
    assert sent == 915, sent  # every operation with variables was probed
    await eventually(lambda: _runs_ended(any_db_app), within=120, what="the probe's runs to end")
    gc.collect()  # a connection left checked out is reported here, against this test
    assert failures == [], "\n".join(failures)
