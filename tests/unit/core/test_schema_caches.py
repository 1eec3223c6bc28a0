"""The parse and validation caches never let a refused or invalid document through twice, and
spare the work they cache."""

from base.settings import Settings
from resolvers.core import limits
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


PAGED = "query($n: Int) { workspaces(first: $n) { edges { node { id name } } } }"


async def test_the_cost_of_one_document_is_kept_per_variables():
    # Cost 5 with one workspace a page, 302 with a hundred: the second is refused every time,
    # although the same parsed document was measured (and its measure kept) for the first.
    schema = build_schema(Settings(graphql_max_cost=100))
    for _ in range(2):
        small = await schema.execute(PAGED, {"n": 1}, context_value=_Anonymous())
        assert [e.extensions["code"] for e in small.errors] == ["UNAUTHENTICATED"]
        large = await schema.execute(PAGED, {"n": 100}, context_value=_Anonymous())
        assert [e.extensions["code"] for e in large.errors] == ["QUERY_TOO_COSTLY"]


async def test_a_document_is_measured_and_validated_once():
    schema = build_schema(Settings())
    query = "query Once { me { id name } }"
    for _ in range(3):
        await schema.execute(query, context_value=_Anonymous())
    measured = [d for d, _shape in limits._shapes.values() if "Once" in _source(d)]
    validated = [d for d, _errors in limits._validations.values() if "Once" in _source(d)]
    assert len(measured) == len(validated) == 1
    assert measured[0] is validated[0]  # the one document ParserCache handed out


def _source(document) -> str:
    return document.loc.source.body if document.loc else ""


async def test_variables_that_cannot_be_page_sizes_share_one_measure():
    # Ids, texts and booleans never reach a page size: 3 different ids are measured once; a
    # different page size is measured again.
    schema = build_schema(Settings())
    query = "query SharedMeasure($id: ID!, $n: Int, $b: Boolean) { node(id: $id) { id } }"
    for id_ in ("a", "b", "c"):
        await schema.execute(query, {"id": id_, "n": 5, "b": True}, context_value=_Anonymous())
    await schema.execute(query, {"id": "d", "n": 6, "b": False}, context_value=_Anonymous())
    keys = [key for key, (d, _shape) in limits._shapes.items() if "SharedMeasure" in _source(d)]
    assert sorted(key[0][1] for key in keys) == [(("n", 5),), (("n", 6),)]
