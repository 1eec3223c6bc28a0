"""Kailash nodes as thin adapters over plain async service functions.

Each node wraps exactly one function of `services`, so the function stays testable without
Kailash and the node adds nothing but the workflow boundary. Node classes are made by the
workflow declarations (`workflows.declare`), one per declared service function.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kailash.nodes.base import NodeParameter, register_node
from kailash.nodes.base_async import AsyncNode
from pydantic import BaseModel, ConfigDict

from services.deps import ServiceDeps


@dataclass(frozen=True)
class ServiceCall:
    """The arguments of one service call, handed to the node by reference.

    Kailash expands `${name}` templates in every dict, list and string input; an opaque object
    is passed through untouched, so user text reaches the database verbatim. The arguments stay
    out of repr because the SDK formats node inputs for its debug log (passwords live here).
    """

    deps: ServiceDeps = field(repr=False)
    args: Sequence[Any] = field(default=(), repr=False)
    kwargs: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # In a workflow of several independent calls (`runtime.runner.CallBatch`) the call's own
    # exception is its result, so that one call's failure does not fail the others.
    errors_as_result: bool = False


class Boxed(BaseModel):
    """Node outputs must be JSON-serialisable or pydantic models; this carries any result."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    value: Any = None
    error: Exception | None = None  # only for a call with `errors_as_result`

    def __repr__(self) -> str:
        # The SDK's execution tracker str()s every node output (json.dumps fails on the box):
        # keep that O(1) and free of user data.
        return f"Boxed({type(self.value).__name__})"

    __str__ = __repr__


ServiceFunction = Callable[..., Awaitable[Any]]

# The SDK's node registry is global and keyed by class name: a second class with the same name
# would silently replace the first, so names are checked here.
_NODE_FOR: dict[str, ServiceFunction] = {}


def service_name(fn: ServiceFunction) -> str:
    """`services.runs.list_runs` -> `runs.list_runs`: unique, and says where the code is."""
    return f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"


def node_class_name(fn: ServiceFunction) -> str:
    """`services.model_check.start` -> `ModelCheckStartNode`."""
    words = re.split(r"[._]+", service_name(fn))
    return "".join(word.title() for word in words if word) + "Node"


def service_node(fn: ServiceFunction) -> type[AsyncNode]:
    """A registered AsyncNode class that awaits `fn(deps, *args, **kwargs)` of its ServiceCall."""
    class_name = node_class_name(fn)
    if _NODE_FOR.setdefault(class_name, fn) is not fn:
        raise ValueError(f"two service functions would make the node {class_name}")

    class _ServiceNode(AsyncNode):
        service = staticmethod(fn)

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            # The SDK logs every failure at ERROR, expected ones (a wrong password) included;
            # the API logs unexpected errors itself, with the request id.
            self.logger.setLevel(logging.CRITICAL)

        def get_parameters(self) -> dict[str, NodeParameter]:
            return {
                "call": NodeParameter(
                    name="call",
                    type=object,
                    required=True,
                    description=f"ServiceCall for {fn.__module__}.{fn.__name__}",
                ),
                # Connected from the previous step of a run so that steps execute in order.
                "previous": NodeParameter(
                    name="previous", type=object, required=False, description="Previous step."
                ),
            }

        async def async_run(self, **inputs: Any) -> dict[str, Any]:
            call: ServiceCall = inputs["call"]
            try:
                value = await fn(call.deps, *call.args, **call.kwargs)
            except Exception as error:
                if not call.errors_as_result:
                    raise
                return {"result": Boxed(error=error)}
            return {"result": Boxed(value=value)}

    _ServiceNode.__name__ = _ServiceNode.__qualname__ = class_name
    _ServiceNode.__doc__ = f"Runs {fn.__module__}.{fn.__name__}."
    registered: type[AsyncNode] = register_node()(_ServiceNode)
    return registered
