"""Kailash nodes as thin adapters over plain async service functions.

Each node wraps exactly one function of `app.services`, so the function stays testable without
Kailash and the node adds nothing but the workflow boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kailash.nodes.base import NodeParameter, register_node
from kailash.nodes.base_async import AsyncNode
from pydantic import BaseModel, ConfigDict

from app.services.deps import ServiceDeps


@dataclass(frozen=True)
class ServiceCall:
    """The arguments of one service call, handed to the node by reference.

    Kailash expands `${name}` templates in every dict, list and string input; an opaque object
    is passed through untouched, so user text reaches the database verbatim. `kwargs` stays out
    of repr because the SDK formats node inputs for its debug log (passwords live here).
    """

    deps: ServiceDeps = field(repr=False)
    kwargs: Mapping[str, Any] = field(default_factory=dict, repr=False)


class Boxed(BaseModel):
    """Node outputs must be JSON-serialisable or pydantic models; this carries any result."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    value: Any = None

    def __repr__(self) -> str:
        # The SDK's execution tracker str()s every node output (json.dumps fails on the box):
        # keep that O(1) and free of user data.
        return f"Boxed({type(self.value).__name__})"

    __str__ = __repr__


ServiceFunction = Callable[..., Awaitable[Any]]


def service_node(fn: ServiceFunction, class_name: str) -> type[AsyncNode]:
    """A registered AsyncNode class named `class_name` that awaits `fn(deps, **kwargs)`."""

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
            return {"result": Boxed(value=await fn(call.deps, **call.kwargs))}

    _ServiceNode.__name__ = _ServiceNode.__qualname__ = class_name
    _ServiceNode.__doc__ = f"Runs {fn.__module__}.{fn.__name__}."
    return register_node()(_ServiceNode)
