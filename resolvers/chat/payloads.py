"""Payloads of the Ask mutations."""

import strawberry

from resolvers.chat.types import Conversation, Feedback, Message
from resolvers.core.errors import UserError
from resolvers.runs.types import Run

_ERRORS = "Expected failures, empty on success."


@strawberry.type(description="Result of createConversation.")
class CreateConversationPayload:
    conversation: Conversation | None = strawberry.field(
        default=None, description="The new conversation."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of renameConversation.")
class RenameConversationPayload:
    conversation: Conversation | None = strawberry.field(
        default=None, description="The conversation as renamed."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of deleteConversation.")
class DeleteConversationPayload:
    deleted_conversation_id: strawberry.ID | None = strawberry.field(
        default=None, description="Id of the deleted conversation."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of askQuestion.")
class AskQuestionPayload:
    question: Message | None = strawberry.field(default=None, description="The question.")
    answer: Message | None = strawberry.field(
        default=None,
        description="The answer, PENDING: follow answerStream with its id for the text.",
    )
    run: Run | None = strawberry.field(default=None, description="The run writing the answer.")
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of regenerateAnswer.")
class RegenerateAnswerPayload:
    answer: Message | None = strawberry.field(
        default=None,
        description="The new answer, PENDING (the earlier one stays in the conversation).",
    )
    run: Run | None = strawberry.field(default=None, description="The run writing it.")
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of stopAnswer.")
class StopAnswerPayload:
    answer: Message | None = strawberry.field(
        default=None,
        description="The answer: STOPPED if it had not started; otherwise still STREAMING and "
        "ends STOPPED within about a second (answerStream sends it).",
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of rateAnswer.")
class RateAnswerPayload:
    answer: Message | None = strawberry.field(default=None, description="The answer.")
    feedback: Feedback | None = strawberry.field(default=None, description="Your rating.")
    errors: list[UserError] = strawberry.field(description=_ERRORS)
