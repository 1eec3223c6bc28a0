"""The parse and validation caches never let a refused or invalid document through twice."""

from base.settings import Settings
from resolvers.schema import build_schema


async def _codes(schema, query: str) -> list[str]:
    result = await schema.execute(query, context_value=None)
    return [e.extensions["code"] for e in result.errors or []]


async def test_too_complex_is_refused_on_every_request():
    schema = build_schema(Settings(graphql_max_depth=2))
    too_deep = "query { workspaces { edges { node { id } } } }"
    for _ in range(3):
        assert await _codes(schema, too_deep) == ["QUERY_TOO_COMPLEX"]


async def test_invalid_document_fails_validation_on_a_cache_hit_too():
    schema = build_schema(Settings())
    for _ in range(3):
        assert await _codes(schema, "query { nope }") == ["GRAPHQL_VALIDATION_FAILED"]


async def test_valid_document_still_executes_after_caching():
    schema = build_schema(Settings())
    for _ in range(3):
        # Resolving `me` needs a signed-in user: reaching the resolver proves validation passed.
        result = await schema.execute("query { me { id } }", context_value=_Anonymous())
        assert [e.extensions["code"] for e in result.errors] == ["UNAUTHENTICATED"]


class _Anonymous:
    request_id = "test"

    class principal:  # noqa: N801 - a stand-in with the one method `me` calls first
        @staticmethod
        def require_user():
            from base.errors import Unauthenticated

            raise Unauthenticated("Sign in to do this.", code="UNAUTHENTICATED")

    async def run(self, workflow, **_kwargs):
        self.principal.require_user()
