"""The answer as it is written (screen 9): text after the cursor, then the final answer."""

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from resolvers.chat.types import AnswerStreamEvent
from resolvers.core.context import Info
from resolvers.core.relay import decode_id
from services import live
from workflows.chat import REQUIRE_ANSWER


@strawberry.type
class ChatSubscriptions:
    @strawberry.subscription(
        description="An answer as the model writes it: TEXT events with the text after your "
        "cursor (all of it so far when `after` is omitted), then one FINISHED event with the "
        "final answer, and the stream ends. Reconnect with the last cursor you saw: nothing is "
        "lost or repeated. An id that is not an answer of yours errors with NOT_FOUND."
    )
    async def answer_stream(
        self,
        info: Info,
        message_id: Annotated[strawberry.ID, strawberry.argument(description="The answer.")],
        after: Annotated[
            str | None,
            strawberry.argument(description="The last cursor you saw (characters you have)."),
        ] = None,
    ) -> AsyncGenerator[AnswerStreamEvent, None]:
        message = decode_id(message_id, "Message", field="messageId")
        await info.context.run(REQUIRE_ANSWER, message_id=message)
        async for event in live.answer_stream(info.context.deps, message_id=message, after=after):
            yield AnswerStreamEvent.of(message, event)
