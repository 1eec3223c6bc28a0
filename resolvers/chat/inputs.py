"""Inputs of the Ask mutations (screen 9)."""

import strawberry

from resolvers.chat.types import Rating


@strawberry.input(description="Start a conversation of yours in a workspace (any member).")
class CreateConversationInput:
    workspace_id: strawberry.ID = strawberry.field(description="The workspace.")
    title: str | None = strawberry.field(
        default=None,
        description="Its title, 1 to 200 characters; when left out it takes the first question.",
    )


@strawberry.input(description="Rename a conversation of yours.")
class RenameConversationInput:
    id: strawberry.ID = strawberry.field(description="The conversation.")
    title: str = strawberry.field(description="The new title, 1 to 200 characters.")


@strawberry.input(description="Delete a conversation of yours with its messages.")
class DeleteConversationInput:
    id: strawberry.ID = strawberry.field(description="The conversation.")


@strawberry.input(
    description="Where a question looks: one collection, or chosen documents, or (both left "
    "out) the whole workspace. Ids must be of the conversation's workspace."
)
class AskScopeInput:
    collection_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this collection."
    )
    document_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only these documents (1 to 100)."
    )


@strawberry.input(description="Ask a question in a conversation of yours.")
class AskQuestionInput:
    conversation_id: strawberry.ID = strawberry.field(description="The conversation.")
    question: str = strawberry.field(description="The question, 1 to 4,000 characters.")
    scope: AskScopeInput | None = strawberry.field(
        default=None, description="Where to look; the whole workspace when left out."
    )


@strawberry.input(description="Stop an answer being written.")
class StopAnswerInput:
    message_id: strawberry.ID = strawberry.field(description="The answer.")


@strawberry.input(description="Rate an answer that has ended.")
class RateAnswerInput:
    message_id: strawberry.ID = strawberry.field(description="The answer.")
    rating: Rating = strawberry.field(description="Up or down.")
    reason: str | None = strawberry.field(
        default=None, description="Why, at most 1,000 characters."
    )


@strawberry.input(description="Write the conversation's last answer again (a new run).")
class RegenerateAnswerInput:
    message_id: strawberry.ID = strawberry.field(description="The last answer.")
