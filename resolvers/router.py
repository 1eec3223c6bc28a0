"""The /graphql endpoint: HTTP queries and mutations, graphql-transport-ws, GraphiQL."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET

from base.auth.principal import Principal
from base.auth.tokens import bearer_token, decode_access_token
from base.errors import Unauthenticated
from resolvers.core.context import Context
from runtime.runner import WorkflowRunner
from services.deps import ServiceDeps


def principal_from(authorization: str | None, *, secret: str, client: str | None) -> Principal:
    """Decode the bearer token if any; a bad token is remembered and reported when used."""
    try:
        token = bearer_token(authorization)
        if token is None:
            return Principal(client_address=client)
        claims = decode_access_token(token, secret=secret)
    except Unauthenticated as error:
        return Principal(client_address=client, token_error=error)
    return Principal(user_id=claims.user_id, client_address=client)


async def context_getter(connection: HTTPConnection) -> Context:
    deps: ServiceDeps = connection.app.state.deps
    runner: WorkflowRunner = connection.app.state.runner
    client = connection.client.host if connection.client else None
    principal = principal_from(
        connection.headers.get("authorization"), secret=deps.settings.jwt_secret, client=client
    )
    return Context(deps=deps.for_principal(principal), runner=runner)


class KnowledgeDeskRouter(GraphQLRouter[Context, None]):
    def __init__(self, schema: Any, graphiql_html: str | None) -> None:
        super().__init__(
            schema,
            context_getter=context_getter,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            graphql_ide="graphiql" if graphiql_html else None,
            allow_queries_via_get=True,
        )
        self._graphiql_html = graphiql_html or ""

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self._graphiql_html)

    async def on_ws_connect(self, context: Context) -> None:
        """Authenticate the socket once, from connection_init's `authorization` (close 4403)."""
        params = context.connection_params
        authorization = params.get("authorization") if isinstance(params, dict) else None
        if not isinstance(authorization, str):
            raise ConnectionRejectionError()
        principal = principal_from(
            authorization,
            secret=context.deps.settings.jwt_secret,
            client=context.principal.client_address,
        )
        if not principal.is_authenticated:
            raise ConnectionRejectionError()
        context.deps = context.deps.for_principal(principal)

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Answer malformed HTTP requests in GraphQL's JSON shape (Strawberry sends plain text)."""
        try:
            return await super().run(request, context=context, root_value=root_value)
        except HTTPException as error:
            code = (
                "OPERATION_NOT_FOUND"
                if "Unknown operation named" in error.reason
                else "BAD_REQUEST"
            )
            request_id = getattr(context, "request_id", None)
            return JSONResponse(
                {
                    "errors": [
                        {
                            "message": error.reason,
                            "extensions": {"code": code, "requestId": request_id},
                        }
                    ]
                },
                status_code=error.status_code,
            )
