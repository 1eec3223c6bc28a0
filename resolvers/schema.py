"""Schema assembly: one root type per operation kind, built from each domain's parts."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ParserCache, SchemaExtension
from strawberry.extensions.context import StreamResultContextManager
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext, StreamExecutionResult
from strawberry.utils.await_maybe import await_maybe

from base.settings import Settings, get_settings
from resolvers.accounts.mutations import AccountMutations
from resolvers.accounts.queries import AccountQueries
from resolvers.accounts.subscriptions import AccountSubscriptions
from resolvers.accounts.types import User
from resolvers.chat.mutations import ChatMutations
from resolvers.chat.queries import ChatQueries
from resolvers.chat.subscriptions import ChatSubscriptions
from resolvers.chat.types import Conversation, Message
from resolvers.core.context import Info
from resolvers.core.errors import annotate_errors
from resolvers.core.limits import DocumentLimits, NoIntrospection, ValidationCacheAfterLimits
from resolvers.core.measure import measuring
from resolvers.documents.mutations import DocumentMutations
from resolvers.documents.queries import DocumentQueries
from resolvers.documents.subscriptions import DocumentSubscriptions
from resolvers.documents.types import Collection, Document
from resolvers.runs.fanout import SharedRunEventExecution
from resolvers.runs.mutations import RunMutations
from resolvers.runs.queries import RunQueries
from resolvers.runs.subscriptions import RunSubscriptions
from resolvers.runs.types import Run
from resolvers.search.queries import SearchQueries
from resolvers.workspaces.mutations import WorkspaceMutations
from resolvers.workspaces.queries import WorkspaceQueries
from resolvers.workspaces.types import Invite, Member, Workspace

# Types that `node(id:)` can return, by the type name inside a global id.
NODE_TYPES: dict[str, type[relay.Node]] = {
    "User": User,
    "Workspace": Workspace,
    "Member": Member,
    "Invite": Invite,
    "Run": Run,
    "Collection": Collection,
    "Document": Document,
    "Conversation": Conversation,
    "Message": Message,
}


@strawberry.type(description="Reads: one named operation per screen (see graphql/operations).")
class Query(
    AccountQueries, WorkspaceQueries, RunQueries, DocumentQueries, SearchQueries, ChatQueries
):
    @strawberry.field(
        description="Any object by its global id; null when missing or in a workspace you do "
        "not belong to."
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> relay.Node | None:
        info.context.principal.require_user()
        try:
            global_id = relay.GlobalID.from_id(id)
        except ValueError:  # malformed: the same as a missing id
            return None
        node_type = NODE_TYPES.get(global_id.type_name)
        if node_type is None:
            return None
        resolved = node_type.resolve_nodes(info=info, node_ids=[global_id.node_id])
        [found] = await resolved if inspect.isawaitable(resolved) else resolved
        return found


@strawberry.type(description="Actions: each returns a payload with `errors` for expected failures.")
class Mutation(
    AccountMutations, WorkspaceMutations, RunMutations, DocumentMutations, ChatMutations
):
    pass


@strawberry.type(description="Live elements over graphql-transport-ws at /graphql.")
class Subscription(
    AccountSubscriptions, RunSubscriptions, DocumentSubscriptions, ChatSubscriptions
):
    pass


class LeanExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's runner without the per-result work of hooks no extension has.

    A subscription asks every extension for results and enters every extension's
    `on_stream_result` for each event it sends; none of the schema's extensions has either, and
    with a thousand clients replaying a run that was most of Strawberry's own cost per event."""

    def __init__(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension] | None = None
    ) -> None:
        super().__init__(execution_context, extensions)
        self.with_results = [
            e for e in self.extensions if type(e).get_results is not SchemaExtension.get_results
        ]
        self.with_stream_hook = [
            e
            for e in self.extensions
            if type(e).on_stream_result is not SchemaExtension.on_stream_result
        ]

    def on_stream_result(self, result: StreamExecutionResult) -> StreamResultContextManager:
        return StreamResultContextManager(self.with_stream_hook, result)

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for extension in self.with_results:
            data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data


class KnowledgeDeskSchema(strawberry.Schema):
    """Every top-level error gets a stable code and the request id; unexpected ones are masked."""

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        measure = measuring.get()
        if measure is not None:  # an HTTP request whose metrics are recorded (ADR 0087)
            measure.execution = execution_context
        return LeanExtensionsRunner(execution_context, extensions)

    def __init__(
        self, *args: Any, mask_errors: bool, max_tokens: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.mask_errors = mask_errors
        self.max_tokens = max_tokens

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context = execution_context.context if execution_context else None
        annotate_errors(
            errors,
            request_id=getattr(context, "request_id", "-"),
            document_parsed=bool(execution_context and execution_context.graphql_document),
            mask=self.mask_errors,
            max_tokens=self.max_tokens,
        )


def build_schema(settings: Settings | None = None) -> KnowledgeDeskSchema:
    settings = settings or get_settings()
    # Factories: a fresh extension instance per operation (they keep per-run state).
    # Order matters: the token cap bounds parsing; parsed documents are cached by text;
    # our limits refuse before graphql-core validates (and its cache keeps the refusal).
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
        lambda: ParserCache(maxsize=256),
        lambda: DocumentLimits(
            max_depth=settings.graphql_max_depth,
            max_fields=settings.graphql_max_fields,
            max_aliases=settings.graphql_max_aliases,
            max_cost=settings.graphql_max_cost,
        ),
    ]
    if not settings.introspection_enabled:
        extensions.append(lambda: AddValidationRules([NoIntrospection]))
    extensions.append(lambda: ValidationCacheAfterLimits(maxsize=256))
    return KnowledgeDeskSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        mask_errors=settings.should_mask_errors,
        max_tokens=settings.graphql_max_tokens,
        execution_context_class=SharedRunEventExecution,
    )
