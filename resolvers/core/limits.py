"""Cheap limits on what one document may ask for, checked before graphql-core validates it.

One pass over the document measures its depth, its size with every fragment spread expanded,
its aliases and its estimated cost (ADR 0008 and ADR 0020):

- Each fragment is measured once and memoised, and the walk uses an explicit stack, so the
  work is linear in the document's size whatever its fragments spread (a chain or a doubling
  of spreads) and however long a chain of fragments is. Strawberry's own QueryDepthLimiter and
  MaxAliasesLimiter re-walk every spread, which is exponential for such input.
- The cost estimate is the number of fields the response may hold: every field counts 1, and a
  list multiplies what is selected below it by the number of items it may hold. A connection's
  list holds the page size requested on the connection field (`first`: its literal, its
  variable's value or default, else 25, at most 100), or on the field above it when the
  connection has no `first` of its own (a payload's `results`, as `search` returns); a list
  field with a `first` holds that many; any other list counts as `UNPAGED_LIST_ITEMS`. Nested
  lists therefore multiply.
- The introspection part of a document (the selections under `__schema` and `__type`) adds no
  depth and multiplies nothing: its shape is fixed by the introspection types, the parser caps
  nesting at 200 and graphql-core's MaxIntrospectionDepthRule refuses nested `fields`,
  `interfaces`, `possibleTypes` and `inputFields` lists. It still counts towards the field and
  alias limits and adds one to the cost per field.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionNode,
    VariableNode,
    get_named_type,
)
from graphql.language import SKIP, VisitorAction
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.validation import ValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from services.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

# Items a list without a page size is assumed to hold (a run's steps, a payload's errors).
UNPAGED_LIST_ITEMS = 10
INTROSPECTION_FIELDS = ("__schema", "__type")

T = TypeVar("T")
Limit = Literal["depth", "fields", "aliases", "cost"]
# The top-level `extensions.code` of a refusal, by limit (tokens: see `token_limit_error`).
CODES: dict[str, str] = {
    "depth": "QUERY_TOO_COMPLEX",
    "fields": "QUERY_TOO_COMPLEX",
    "aliases": "QUERY_TOO_COMPLEX",
    "tokens": "QUERY_TOO_COMPLEX",
    "cost": "QUERY_TOO_COSTLY",
}


@dataclass(frozen=True)
class Shape:
    depth: int
    fields: int  # fields selected once every fragment spread is expanded
    aliases: int
    cost: int = 0  # the most fields the response may hold (lists multiply)
    visits: int = 0  # selections the measuring walk looked at: the work it did


@dataclass
class _Sum:
    """What a selection set adds up to. Its list fields' items are kept apart (`per_item`):
    how many items there are is known only to the field that selected the set."""

    depth: int = 0
    fields: int = 0
    aliases: int = 0
    fixed: int = 0  # cost that does not depend on the page size of the field above
    per_item: int = 0  # cost of one item of each list field, summed over the list fields
    # Cost of one item of a connection that has no `first` of its own (a payload's `results`):
    # its page size is the `first` of the field that selected the payload.
    paged: int = 0

    def add(self, other: _Sum) -> None:
        self.depth = max(self.depth, other.depth)
        self.fields += other.fields
        self.aliases += other.aliases
        self.fixed += other.fixed
        self.per_item += other.per_item
        self.paged += other.paged

    def total(self, items: int) -> int:
        return self.fixed + items * (self.per_item + self.paged)


@dataclass
class _Frame:
    """A selection set being summed, and how to fold it into the frame below when done."""

    selections: tuple[SelectionNode, ...]
    parent: GraphQLNamedType | None
    kind: Literal["root", "field", "inline", "fragment"]
    node: SelectionNode | FragmentDefinitionNode | None = None
    definition: GraphQLField | None = None
    index: int = 0
    sum: _Sum = field(default_factory=_Sum)


def _fields_of(parent: GraphQLNamedType | None) -> Mapping[str, GraphQLField]:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        fields: Mapping[str, GraphQLField] = parent.fields
        return fields
    return {}


def _is_introspection_type(parent: GraphQLNamedType | None) -> bool:
    return parent is not None and parent.name.startswith("__")


def _is_connection(type_: GraphQLNamedType | None) -> bool:
    """A Relay connection type: an object with `edges` and `pageInfo`."""
    return isinstance(type_, GraphQLObjectType) and {"edges", "pageInfo"} <= type_.fields.keys()


def _is_list(definition: GraphQLField | None) -> bool:
    if definition is None:
        return False
    type_ = definition.type
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


class _Measure:
    def __init__(
        self,
        document: DocumentNode,
        schema: GraphQLSchema | None,
        variables: Mapping[str, Any] | None,
    ) -> None:
        self.schema = schema
        self.variables = variables or {}
        self.operations = [
            d for d in document.definitions if isinstance(d, OperationDefinitionNode)
        ]
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[str, _Sum] = {}
        self.in_progress: set[str] = set()
        self.visits = 0
        self.defaults: dict[str, int] = {}
        for operation in self.operations:
            for variable in operation.variable_definitions or ():
                if isinstance(variable.default_value, IntValueNode):
                    name = variable.variable.name.value
                    value = int(variable.default_value.value)
                    self.defaults[name] = max(value, self.defaults.get(name, value))

    def _type(self, name: str) -> GraphQLNamedType | None:
        return self.schema.get_type(name) if self.schema else None

    def _root(self, operation: OperationDefinitionNode) -> GraphQLNamedType | None:
        return self.schema.get_root_type(operation.operation) if self.schema else None

    def _definition(self, parent: GraphQLNamedType | None, node: FieldNode) -> GraphQLField | None:
        name = node.name.value
        if self.schema is not None and parent is self.schema.query_type:
            if name == "__schema":
                return SchemaMetaFieldDef
            if name == "__type":
                return TypeMetaFieldDef
        return _fields_of(parent).get(name)

    def page_size(self, node: FieldNode) -> int:
        """The page size a connection field asks for, as PageRequest will read it."""
        size = DEFAULT_PAGE_SIZE
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                size = int(value.value)
            elif isinstance(value, VariableNode):
                given = self.variables.get(value.name.value)
                if isinstance(given, int) and not isinstance(given, bool):
                    size = given
                else:  # omitted or null: the default, or PageRequest's (coercion refuses others)
                    size = self.defaults.get(value.name.value, DEFAULT_PAGE_SIZE)
        return max(0, min(size, MAX_PAGE_SIZE))

    def run(self) -> Shape:
        depth = fields = aliases = cost = 0
        for name in self.fragments:
            self._fragment(name)
        for operation in self.operations:
            total = self._walk(
                _Frame(tuple(operation.selection_set.selections), self._root(operation), "root")
            )
            depth = max(depth, total.depth)
            fields += total.fields
            aliases += total.aliases
            cost += total.total(UNPAGED_LIST_ITEMS)
        return Shape(depth, fields, aliases, cost, self.visits)

    def _fragment(self, name: str) -> _Sum:
        """The memoised sum of a fragment; an unknown or cyclic spread counts as nothing."""
        if name in self.memo:
            return self.memo[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.in_progress:
            return _Sum()
        # Only reached for a fragment not yet measured, so each is walked once.
        return self._walk(
            _Frame(
                tuple(definition.selection_set.selections),
                self._type(definition.type_condition.name.value),
                "fragment",
                node=definition,
            )
        )

    def _walk(self, start: _Frame) -> _Sum:
        """Sum `start` with an explicit stack (no recursion: fragment chains may be long)."""
        if start.kind == "fragment":
            assert isinstance(start.node, FragmentDefinitionNode)
            self.in_progress.add(start.node.name.value)
        stack = [start]
        while True:
            frame = stack[-1]
            if frame.index < len(frame.selections):
                selection = frame.selections[frame.index]
                frame.index += 1
                self.visits += 1
                child = self._enter(frame, selection)
                if child is not None:
                    if child.kind == "fragment":
                        assert isinstance(child.node, FragmentDefinitionNode)
                        self.in_progress.add(child.node.name.value)
                    stack.append(child)
                continue
            stack.pop()
            done = self._leave(frame)
            if not stack:
                return done
            stack[-1].sum.add(done)

    def _enter(self, frame: _Frame, selection: SelectionNode) -> _Frame | None:
        """Add a leaf (or a measured fragment) to `frame`, or return the frame to walk next."""
        if isinstance(selection, FieldNode):
            definition = self._definition(frame.parent, selection)
            inner = get_named_type(definition.type) if definition else None
            child = _Frame(
                tuple(selection.selection_set.selections) if selection.selection_set else (),
                inner,
                "field",
                node=selection,
                definition=definition,
            )
            if not child.selections:  # a leaf: fold it in at once
                frame.sum.add(self._leave(child))
                return None
            return child
        if isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            return _Frame(
                tuple(selection.selection_set.selections),
                self._type(condition.name.value) if condition else frame.parent,
                "inline",
                node=selection,
            )
        if isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = self.fragments.get(name)
            if name in self.memo or fragment is None or name in self.in_progress:
                frame.sum.add(self._fragment(name))
                return None
            return _Frame(
                tuple(fragment.selection_set.selections),
                self._type(fragment.type_condition.name.value),
                "fragment",
                node=fragment,
            )
        return None

    def _leave(self, frame: _Frame) -> _Sum:
        """What a finished frame adds to the selection set that holds it."""
        inner = frame.sum
        if frame.kind == "fragment":
            assert isinstance(frame.node, FragmentDefinitionNode)
            name = frame.node.name.value
            self.in_progress.discard(name)
            self.memo[name] = inner
            return inner
        if frame.kind in ("root", "inline"):
            return inner
        node = frame.node
        assert isinstance(node, FieldNode)
        alias = 1 if node.alias else 0
        if _is_introspection_type(frame.parent) or node.name.value in INTROSPECTION_FIELDS:
            # Introspection: no depth below `__schema`/`__type`, one per field, no multiplying.
            flat = inner.fixed + inner.per_item
            own_depth = 1 if node.name.value in INTROSPECTION_FIELDS else 0
            return _Sum(
                depth=own_depth,
                fields=1 + inner.fields,
                aliases=alias + inner.aliases,
                fixed=1 + flat,
            )
        definition = frame.definition
        takes_page = definition is not None and "first" in definition.args
        size = self.page_size(node) if takes_page else UNPAGED_LIST_ITEMS
        connection = _is_connection(frame.parent)
        result = _Sum(depth=1 + inner.depth, fields=1 + inner.fields, aliases=alias + inner.aliases)
        if connection and not takes_page:
            # A payload's connection (`search(first:) { results { edges ... } }`): its edges are
            # as many as the payload's field asks for, so their cost goes up unmultiplied.
            result.fixed, result.paged = 1 + inner.fixed, inner.per_item + inner.paged
        elif _is_list(definition) and takes_page:
            # A list with a `first` of its own (`passages(first:)`) holds that many items.
            result.fixed = 1 + size * inner.total(UNPAGED_LIST_ITEMS)
        elif _is_list(definition):
            # A list: its items' cost is multiplied by the field that selected this one.
            result.fixed, result.per_item = 1, inner.total(UNPAGED_LIST_ITEMS)
        elif takes_page and not connection:
            # A payload with a `first` (`search`): its own lists (`errors`) are not paged by it.
            result.fixed = (
                1 + inner.fixed + inner.per_item * UNPAGED_LIST_ITEMS + inner.paged * size
            )
        else:
            result.fixed = 1 + inner.total(size)
        return result


def measure(
    document: DocumentNode,
    schema: GraphQLSchema | None = None,
    variables: Mapping[str, Any] | None = None,
) -> Shape:
    """Depth, expanded size, aliases and estimated cost of every operation in `document`.

    Without a schema, no field is known to be a list or a connection, so the cost is the
    expanded field count.
    """
    return _Measure(document, schema, variables).run()


# Results computed once per parsed document (ParserCache hands out one per text), kept with the
# document so that its id cannot be reused while they are: (key, id(document)) -> (document,
# result), least recently used first.
_shapes: OrderedDict[tuple[Any, int], tuple[DocumentNode, Any]] = OrderedDict()
_validations: OrderedDict[tuple[Any, int], tuple[DocumentNode, Any]] = OrderedDict()
SHAPES_KEPT = 1024  # documents x page sizes


def page_size_key(variables: Mapping[str, Any] | None) -> tuple[tuple[str, int], ...]:
    """What of `variables` a measure can depend on: only integers reach a page size (anything
    else falls back to the default), so ids, filters and texts must not split the cache."""
    return tuple(
        sorted(
            (name, value)
            for name, value in (variables or {}).items()
            if isinstance(value, int) and not isinstance(value, bool)
        )
    )


def _by_document(
    cache: OrderedDict[tuple[Any, int], tuple[DocumentNode, Any]],
    key: Any,
    document: DocumentNode,
    compute: Callable[[], T],
    maxsize: int,
) -> T:
    full_key = (key, id(document))
    found = cache.get(full_key)
    if found is not None and found[0] is document:
        cache.move_to_end(full_key)
        result: T = found[1]
        return result
    result = compute()
    cache[full_key] = (document, result)
    if len(cache) > maxsize:
        cache.popitem(last=False)
    return result


def limit_error(limit: str, message: str, maximum: int) -> GraphQLError:
    """A refusal with its stable code, the limit it hit and that limit's value."""
    return GraphQLError(message, extensions={"code": CODES[limit], "limit": limit, "max": maximum})


class DocumentLimits(SchemaExtension):
    def __init__(
        self,
        *,
        max_depth: int,
        max_fields: int = 2000,
        max_aliases: int = 100,
        max_cost: int | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.max_fields = max_fields
        self.max_aliases = max_aliases
        self.max_cost = max_cost

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            variables = context.variables if isinstance(context.variables, dict) else None
            schema = context.schema._schema
            shape = _by_document(
                _shapes,
                (id(schema), page_size_key(variables)),
                document,
                lambda: measure(document, schema, variables),
                SHAPES_KEPT,
            )
            refusal = self._refusal(shape)
            if refusal is not None:
                # Setting errors here makes Strawberry skip graphql-core's validation entirely.
                context.pre_execution_errors = [refusal]
        yield

    def _refusal(self, shape: Shape) -> GraphQLError | None:
        complex_ = "Query is too complex:"
        if shape.depth > self.max_depth:
            return limit_error(
                "depth", f"{complex_} depth {shape.depth} exceeds {self.max_depth}.", self.max_depth
            )
        if shape.fields > self.max_fields:
            return limit_error(
                "fields",
                f"{complex_} {shape.fields} fields (fragments expanded) exceed {self.max_fields}.",
                self.max_fields,
            )
        if shape.aliases > self.max_aliases:
            return limit_error(
                "aliases",
                f"{complex_} {shape.aliases} aliases exceed {self.max_aliases}.",
                self.max_aliases,
            )
        if self.max_cost is not None and shape.cost > self.max_cost:
            return limit_error(
                "cost",
                f"Query is too costly: estimated cost {shape.cost} exceeds {self.max_cost} "
                "(lists count their page size, nested lists multiply).",
                self.max_cost,
            )
        return None


class ValidationCacheAfterLimits(SchemaExtension):
    """graphql-core validation cached by document, keeping an error DocumentLimits already set.

    Stock ValidationCache overwrites `pre_execution_errors` unconditionally, which would erase
    the "too complex" refusal and validate the very document it refused. It also finds its entry
    by the document's hash, which walks the whole syntax tree (a frozen dataclass hashes every
    field) on every operation; ParserCache hands out one document per text, so this cache keys
    by the document itself.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors:
            yield
            return
        document = context.graphql_document
        assert document is not None  # validation runs after a successful parse
        schema = context.schema._schema
        rules = tuple(context.validation_rules)
        context.pre_execution_errors = _by_document(
            _validations,
            (id(schema), rules),
            document,
            lambda: validate_document(schema, document, rules),
            self.maxsize,
        )
        yield


class NoIntrospection(ValidationRule):
    """Refuses `__schema` and `__type` (once each, not once per field below them); `__typename`
    stays. Added to validation when introspection is off (production, by default)."""

    def enter_field(self, node: FieldNode, *_args: object) -> VisitorAction:
        if node.name.value in INTROSPECTION_FIELDS:
            self.report_error(
                GraphQLError(
                    f"Introspection is disabled on this server (`{node.name.value}`).",
                    node,
                    extensions={"code": "INTROSPECTION_DISABLED"},
                )
            )
            return SKIP
        return None
