"""Screen queries run a fixed number of SQL statements, however many rows they show."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from base.settings import Settings
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.team import invite_and_accept


@contextmanager
def count_statements(engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_app_shell_is_three_statements_for_any_number_of_workspaces(
    client: GraphQLClient, app, settings: Settings
):
    owner = await sign_up(client, "Owner", "owner@example.com")
    joined = 1
    for n in (1, 6):
        while joined < n:
            joined += 1
            other = await sign_up(client, f"Other {joined}", f"other{joined}@example.com")
            ws = await first_workspace(client, other["accessToken"])
            await invite_and_accept(
                client,
                settings,
                ws["id"],
                "VIEWER",
                by=other["accessToken"],
                email="owner@example.com",
                invitee=owner["accessToken"],
            )
        with count_statements(app.state.engine) as statements:
            shell = await client.op("AppShell", token=owner["accessToken"])
        assert shell["workspaces"]["totalCount"] == n
        # the user; COUNT of the workspaces; one page of workspaces with the caller's role
        assert len(statements) == 3, statements


async def test_workspace_members_is_four_statements(client: GraphQLClient, app):
    owner = await sign_up(client, "Owner", "owner@example.com")
    workspace = await first_workspace(client, owner["accessToken"])
    with count_statements(app.state.engine) as statements:
        await client.op(
            "WorkspaceMembers", {"workspaceId": workspace["id"]}, token=owner["accessToken"]
        )
    # workspace by id (loader); role check; COUNT of members; page of members joined to users
    assert len(statements) == 4, statements
