"""Plain fields completed without graphql-core's per-field machinery.

For every field graphql-core builds a `ResolveInfo`, calls the resolver (for a field Strawberry
serves from an attribute: a wrapper, then `getattr`), checks the result for an awaitable and
dispatches on the field's type before it coerces a scalar. A page of search results has about
600 highlight offsets, a page of documents about 200 scalars, and that machinery is most of
their cost in GraphQL.

A plain field here is one Strawberry itself resolves by `getattr` (no resolver, no field
extension, no arguments) whose type is a scalar or an enum, or a list of non-null ones: its
value is the attribute, coerced by the type's own `coerce_output_value`, exactly what
graphql-core would return. The `id` of a relay node whose class keeps Strawberry's own
`resolve_id` and `resolve_typename` is one too: the global id of the type's name and the
attribute typed `NodeID`, as Strawberry's resolver builds it. So is an attribute whose type is
an object type (or a list of non-null ones) that graphql-core completes without a type check,
when every field selected in it is plain in turn; `__typename` beside plain fields is the
type's name. Anything else takes graphql-core's path: a null where the type has none, a value
the type refuses, an error, an instance of a subclass, a schema with resolver middleware. So
nulls and errors read the same.

An object type with interfaces (a relay node) has a check per value, Strawberry's
`isinstance` of the type's class or interfaces: an instance of exactly that class passes it,
so such objects are read directly too, and any other value takes graphql-core's path.

A field with a resolver is read as an attribute when it is declared `prefetched(attribute)`
(no arguments, no field extension) and the source holds its value there: the caller that built
the source had already loaded it (a page of documents with their collections, owners and
tags). `NOT_LOADED` there sends the field to its resolver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path
from strawberry import relay
from strawberry.relay.utils import to_base64
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.cast import TYPE_CAST_ATTRIBUTE
from strawberry.types.field import StrawberryField

Coerce = Callable[[Any], Any]

_PREFETCHED = "prefetched"  # the metadata key of a field's attribute (see `prefetched`)


class _NotLoaded:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_LOADED"


NOT_LOADED: Any = _NotLoaded()
"""A prefetched attribute's value until its caller loaded it: the resolver must find it."""


def prefetched(attribute: str) -> dict[str, str]:
    """The metadata of a field whose value the source may already hold in `attribute` (set by
    whoever loaded it, `NOT_LOADED` otherwise): then it is read from there as a plain field,
    without its resolver. The resolver must give the same value when it finds it loaded."""
    return {_PREFETCHED: attribute}


@dataclass(frozen=True, slots=True)
class PlainField:
    attribute: str
    coerce: Coerce
    is_list: bool  # a list of non-null leaves
    nullable: bool = False
    source_type: type | None = None  # when set, read only from instances of exactly this class


@dataclass(frozen=True, slots=True)
class PlainObjectField:
    """An object (or a list of non-null objects) read by attribute: plain where every field
    selected in it is."""

    attribute: str
    object_type: GraphQLObjectType
    is_list: bool
    nullable: bool
    exact_type: type | None = None  # when set, only instances of exactly this class are read


# type name -> field name -> how to read it
PlainFields = dict[str, dict[str, PlainField | PlainObjectField]]
# What one selection set reads: each response name with the function that reads its value from
# the source (Undefined: graphql-core must complete the object).
Selection = list[tuple[str, Callable[[Any], Any]]]

_by_schema: WeakKeyDictionary[GraphQLSchema, PlainFields] = WeakKeyDictionary()


def _leaf_coercer(graphql_type: Any) -> Coerce | None:
    if isinstance(graphql_type, GraphQLScalarType | GraphQLEnumType):
        return graphql_type.coerce_output_value
    return None


def _node_function(cls: type, name: str) -> Any:
    """The function behind the class method `name` as `cls` has it (inherited or its own)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return getattr(vars(klass)[name], "__func__", None)
    return None


def _node_id_field(graphql_type: GraphQLObjectType, field: Any) -> PlainField | None:
    """The `id` of a relay node read as Strawberry's `Node._id` resolver reads it."""
    definition = field.extensions.get("strawberry-definition")
    owner = graphql_type.extensions.get("strawberry-definition")
    resolver = getattr(definition, "base_resolver", None)
    wrapped = getattr(getattr(resolver, "wrapped_func", None), "__func__", None)
    if not isinstance(owner, StrawberryObjectDefinition) or field.args:
        return None
    node = owner.origin
    if (
        not isinstance(node, type)
        or not issubclass(node, relay.Node)
        or wrapped is not _node_function(relay.Node, "_id")
        or getattr(definition, "extensions", None)
        or _node_function(node, "resolve_id") is not _node_function(relay.Node, "resolve_id")
        or _node_function(node, "resolve_typename")
        is not _node_function(relay.Node, "resolve_typename")
    ):
        return None
    type_name = graphql_type.name
    return PlainField(
        node.resolve_id_attr(),
        lambda node_id: to_base64(type_name, str(node_id)),
        is_list=False,
        source_type=node,
    )


def _attribute_of(definition: StrawberryField, resolve: Any) -> str | None:
    """The attribute a field without arguments is read from: its own for a field Strawberry
    reads by `getattr`, the declared one for a prefetched field; None for any other."""
    if (
        definition.is_basic_field
        and definition.default_resolver is getattr
        and getattr(resolve, "__name__", "") == "_get_basic_result"  # no exception handlers
    ):
        return definition.python_name
    attribute = definition.metadata.get(_PREFETCHED)
    if attribute and definition.base_resolver is not None and not definition.extensions:
        return str(attribute)
    return None


def _plain_field(field: Any) -> PlainField | PlainObjectField | None:
    definition = field.extensions.get("strawberry-definition")
    if field.args or not isinstance(definition, StrawberryField):
        return None
    name = _attribute_of(definition, field.resolve)
    if name is None:
        return None
    field_type = field.type
    nullable = not isinstance(field_type, GraphQLNonNull)
    if not nullable:
        field_type = field_type.of_type
    coerce = _leaf_coercer(field_type)
    if coerce is not None:
        return PlainField(name, coerce, is_list=False, nullable=nullable)
    if (exact := _value_check(field_type)) is not False:
        return PlainObjectField(name, field_type, False, nullable, exact)
    if isinstance(field_type, GraphQLList) and isinstance(field_type.of_type, GraphQLNonNull):
        item_type = field_type.of_type.of_type
        coerce = _leaf_coercer(item_type)
        if coerce is not None:
            return PlainField(name, coerce, is_list=True, nullable=nullable)
        if (exact := _value_check(item_type)) is not False:
            return PlainObjectField(name, item_type, True, nullable, exact)
    return None


def _value_check(graphql_type: Any) -> type | None | Literal[False]:
    """How a value of `graphql_type` is checked when read directly: None, not at all (an
    object type without `is_type_of`); a class, the value must be an instance of exactly it
    (Strawberry's own `is_type_of` of a type with interfaces, which that passes); False, not
    read directly (not an object type, or an `is_type_of` of its own)."""
    if not isinstance(graphql_type, GraphQLObjectType):
        return False
    if graphql_type.is_type_of is None:
        return None
    definition = graphql_type.extensions.get("strawberry-definition")
    if (
        isinstance(definition, StrawberryObjectDefinition)
        and definition.is_type_of is None  # Strawberry's own check, from the interfaces
        and definition.interfaces
        and definition.concrete_of is None
        and isinstance(definition.origin, type)
    ):
        return definition.origin
    return False


def _is_exactly(value: Any, exact_type: type | None) -> bool:
    return exact_type is None or (
        type(value) is exact_type and getattr(value, TYPE_CAST_ATTRIBUTE, None) is None
    )


def plain_fields(schema: GraphQLSchema) -> PlainFields:
    """The plain fields of each object type of `schema`, found once per schema."""
    found = _by_schema.get(schema)
    if found is None:
        found = {}
        for name, graphql_type in schema.type_map.items():
            if isinstance(graphql_type, GraphQLObjectType) and not name.startswith("__"):
                fields = {}
                for field_name, field in graphql_type.fields.items():
                    plain = _plain_field(field) or _node_id_field(graphql_type, field)
                    if plain is not None:
                        fields[field_name] = plain
                if fields:
                    found[name] = fields
        _by_schema[schema] = found
    return found


_NONE: dict[str, PlainField | PlainObjectField] = {}


def _read(plain: PlainField, source: Any) -> Any:
    """The field's coerced value (None: null), or Undefined when graphql-core must complete it."""
    if plain.source_type is not None and type(source) is not plain.source_type:
        return Undefined
    try:
        value = getattr(source, plain.attribute)
        if value is None:
            return None if plain.nullable else Undefined
        if value is NOT_LOADED:
            return Undefined
        if not plain.is_list:
            coerced = plain.coerce(value)
            return Undefined if coerced is None else coerced
        if not isinstance(value, list | tuple):
            return Undefined
        items = [plain.coerce(item) for item in value]
    except Exception:  # graphql-core reports it, located, on its own path
        return Undefined
    if any(item is None or item is Undefined for item in items):
        return Undefined
    return items


def _read_selection(selection: Selection, source: Any) -> Any:
    """The object `selection` reads from `source`, or Undefined when graphql-core must
    complete it."""
    completed = {}
    for response_name, read in selection:
        value = read(source)
        if value is Undefined:
            return Undefined
        completed[response_name] = value
    return completed


def _read_objects(plain: PlainObjectField, selection: Selection, source: Any) -> Any:
    """An object field (or a list of non-null objects) read through its selection."""
    try:
        value = getattr(source, plain.attribute)
    except Exception:  # graphql-core reports it, located, on its own path
        return Undefined
    if value is None:
        return None if plain.nullable else Undefined
    if value is NOT_LOADED:
        return Undefined
    if not plain.is_list:
        if not _is_exactly(value, plain.exact_type):
            return Undefined
        return _read_selection(selection, value)
    return _read_items(selection, value, plain.exact_type)


def _read_items(selection: Selection, items: Any, exact_type: type | None) -> Any:
    """A list (or tuple) of non-null objects read through `selection`, or Undefined when
    graphql-core must complete it (a null item, an item of another class than `exact_type`,
    an item that does not read cleanly)."""
    if not isinstance(items, list | tuple):
        return Undefined
    completed = []
    for item in items:
        if item is None or not _is_exactly(item, exact_type):
            return Undefined
        values = _read_selection(selection, item)
        if values is Undefined:
            return Undefined
        completed.append(values)
    return completed


class PlainFieldExecution(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with plain fields read directly."""

    _plain: PlainFields | None = None
    _wrapped = False  # an extension wraps every resolver: nothing is read directly
    _selections: dict[int, tuple[GroupedFieldSet, Selection | None]] | None = None

    def _plain_by_type(self) -> PlainFields:
        """The schema's plain fields, found once per execution."""
        if self._plain is None:
            # Strawberry passes a manager on every request, empty unless an extension wraps
            # each resolver: then every field goes through it.
            middleware = self.middleware_manager
            self._wrapped = middleware is not None and bool(middleware.middlewares)
            self._plain = {} if self._wrapped else plain_fields(self.schema)
        return self._plain

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        plain_by_type = self._plain
        if plain_by_type is None:
            plain_by_type = self._plain_by_type()
        field_name = field_details_list[0].node.name.value
        plain = plain_by_type.get(parent_type.name, _NONE).get(field_name)
        if plain is not None:
            if isinstance(plain, PlainField):
                value = _read(plain, source)
            else:
                selection = self._selection_in(plain.object_type, field_details_list)
                value = Undefined if selection is None else _read_objects(plain, selection, source)
            if value is not Undefined:
                return value
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        """An object whose selected fields are all plain is completed in one step: no path and
        no per-field dispatch for each of them (a page of search results has about 240 such
        objects, its highlight ranges). Any field that must take graphql-core's path sends the
        whole object there."""
        selection = self._selection(parent_type, grouped_field_set)
        if selection is not None:
            completed = _read_selection(selection, source_value)
            if completed is not Undefined:
                return completed
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def complete_list_value(
        self,
        return_type: GraphQLList[Any],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """A list of non-null objects whose selected fields are all plain is completed in one
        loop: no path, no dispatch on the item type and no collection of fields per item. Any
        item graphql-core must complete (a null, a value the type refuses) sends the whole
        list to its path."""
        completed = self._plain_objects(return_type, field_details_list, result)
        if completed is not None:
            return completed
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _plain_objects(
        self, return_type: GraphQLList[Any], field_details_list: FieldDetailsList, result: Any
    ) -> list[dict[str, Any]] | None:
        item_type = return_type.of_type
        if not isinstance(item_type, GraphQLNonNull):
            return None
        object_type = item_type.of_type
        exact_type = _value_check(object_type)
        if exact_type is False:
            return None
        selection = self._selection_in(object_type, field_details_list)
        if selection is None:
            return None
        completed = _read_items(selection, result, exact_type)
        return None if completed is Undefined else completed

    def _selection_in(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> Selection | None:
        """The selection of a field of type `object_type` when it is all plain (graphql-core
        collects and memoizes its subfields once per field)."""
        grouped_field_set, deferred, _ = self.collect_subfields(object_type, field_details_list)
        return None if deferred else self._selection(object_type, grouped_field_set)

    def _selection(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> Selection | None:
        """How to read each field of `grouped_field_set`, or None when any of them is not
        plain. Found once per field set and execution; the entry keeps its field set alive, as
        graphql-core's own memo does, so that its id stays its own."""
        cache = self._selections
        if cache is None:
            cache = self._selections = {}
        entry = cache.get(id(grouped_field_set))
        if entry is None:
            entry = (grouped_field_set, self._selection_of(parent_type, grouped_field_set))
            cache[id(grouped_field_set)] = entry
        return entry[1]

    def _selection_of(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> Selection | None:
        fields = self._plain_by_type().get(parent_type.name, _NONE)
        if self._wrapped:
            return None
        type_name = parent_type.name
        selection: Selection = []
        for response_name, field_details_list in grouped_field_set.items():
            field_name = field_details_list[0].node.name.value
            if field_name == "__typename":
                selection.append((response_name, lambda _source: type_name))
                continue
            plain = fields.get(field_name)
            if plain is None:
                return None
            if isinstance(plain, PlainField):
                selection.append((response_name, partial(_read, plain)))
                continue
            inner = self._selection_in(plain.object_type, field_details_list)
            if inner is None:
                return None
            selection.append((response_name, partial(_read_objects, plain, inner)))
        return selection
