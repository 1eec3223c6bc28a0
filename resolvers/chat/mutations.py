"""Ask mutations (screen 9): conversations, questions, stop, rate, regenerate. Any member."""

from typing import Annotated, Any

import strawberry

from base.models.chat import Rating as DomainRating
from resolvers.chat.inputs import (
    AskQuestionInput,
    AskScopeInput,
    CreateConversationInput,
    DeleteConversationInput,
    RateAnswerInput,
    RegenerateAnswerInput,
    RenameConversationInput,
    StopAnswerInput,
)
from resolvers.chat.payloads import (
    AskQuestionPayload,
    CreateConversationPayload,
    DeleteConversationPayload,
    RateAnswerPayload,
    RegenerateAnswerPayload,
    RenameConversationPayload,
    StopAnswerPayload,
)
from resolvers.chat.types import Conversation, Feedback, Message
from resolvers.core.context import Info
from resolvers.core.errors import as_payload
from resolvers.core.inputs import INPUT
from resolvers.core.relay import decode_id, global_id
from resolvers.runs.types import Run
from services.chat import AskScope
from workflows.chat import (
    ASK_QUESTION,
    CREATE_CONVERSATION,
    DELETE_CONVERSATION,
    RATE_ANSWER,
    REGENERATE_ANSWER,
    RENAME_CONVERSATION,
    STOP_ANSWER,
)

_OWN = " Only in your own conversations; any other id is NOT_FOUND."


def _scope(scope: AskScopeInput | None) -> AskScope:
    if scope is None:
        return AskScope()
    collection = (
        decode_id(scope.collection_id, "Collection", field="scope.collectionId")
        if scope.collection_id is not None
        else None
    )
    documents = (
        tuple(decode_id(d, "Document", field="scope.documentIds") for d in scope.document_ids)
        if scope.document_ids is not None
        else None
    )
    return AskScope(collection_id=collection, document_ids=documents)


@strawberry.type
class ChatMutations:
    @strawberry.mutation(description="Start a conversation (any member of the workspace).")
    async def create_conversation(
        self, info: Info, input: Annotated[CreateConversationInput, INPUT]
    ) -> CreateConversationPayload:
        async def work() -> dict[str, Any]:
            view = await info.context.run(
                CREATE_CONVERSATION,
                workspace_id=decode_id(input.workspace_id, "Workspace", field="workspaceId"),
                title=input.title,
            )
            return {"conversation": Conversation.of(view)}

        return await as_payload(CreateConversationPayload, work())

    @strawberry.mutation(description="Rename a conversation." + _OWN)
    async def rename_conversation(
        self, info: Info, input: Annotated[RenameConversationInput, INPUT]
    ) -> RenameConversationPayload:
        async def work() -> dict[str, Any]:
            view = await info.context.run(
                RENAME_CONVERSATION,
                conversation_id=decode_id(input.id, "Conversation", field="id"),
                title=input.title,
            )
            return {"conversation": Conversation.of(view)}

        return await as_payload(RenameConversationPayload, work())

    @strawberry.mutation(
        description="Delete a conversation with its messages; an answer being written is "
        "stopped." + _OWN
    )
    async def delete_conversation(
        self, info: Info, input: Annotated[DeleteConversationInput, INPUT]
    ) -> DeleteConversationPayload:
        async def work() -> dict[str, Any]:
            deleted = await info.context.run(
                DELETE_CONVERSATION, conversation_id=decode_id(input.id, "Conversation", field="id")
            )
            return {"deleted_conversation_id": global_id("Conversation", deleted)}

        return await as_payload(DeleteConversationPayload, work())

    @strawberry.mutation(
        description="Ask a question: it is stored with a PENDING answer at once, and a run "
        "writes the answer (follow answerStream with the answer's id). ANSWER_IN_PROGRESS while "
        "another answer of the conversation is being written." + _OWN
    )
    async def ask_question(
        self, info: Info, input: Annotated[AskQuestionInput, INPUT]
    ) -> AskQuestionPayload:
        async def work() -> dict[str, Any]:
            result = await info.context.run(
                ASK_QUESTION,
                conversation_id=decode_id(
                    input.conversation_id, "Conversation", field="conversationId"
                ),
                question=input.question,
                scope=_scope(input.scope),
            )
            return {
                "question": Message.of(result.question),
                "answer": Message.of(result.answer),
                "run": Run.of(result.run),
            }

        return await as_payload(AskQuestionPayload, work())

    @strawberry.mutation(
        description="Stop an answer being written; it ends STOPPED with the text so far. "
        "ANSWER_FINISHED if it has ended." + _OWN
    )
    async def stop_answer(
        self, info: Info, input: Annotated[StopAnswerInput, INPUT]
    ) -> StopAnswerPayload:
        async def work() -> dict[str, Any]:
            view = await info.context.run(
                STOP_ANSWER, message_id=decode_id(input.message_id, "Message", field="messageId")
            )
            return {"answer": Message.of(view)}

        return await as_payload(StopAnswerPayload, work())

    @strawberry.mutation(
        description="Thumbs up or down on an answer that has ended, with an optional reason; "
        "rating again replaces your rating." + _OWN
    )
    async def rate_answer(
        self, info: Info, input: Annotated[RateAnswerInput, INPUT]
    ) -> RateAnswerPayload:
        async def work() -> dict[str, Any]:
            message_id = decode_id(input.message_id, "Message", field="messageId")
            view = await info.context.run(
                RATE_ANSWER,
                message_id=message_id,
                rating=DomainRating(input.rating.name),
                reason=input.reason,
            )
            answer = await info.context.loaders.message_by_id.load(message_id)
            return {
                "answer": Message.of(answer) if answer else None,
                "feedback": Feedback.of(view),
            }

        return await as_payload(RateAnswerPayload, work())

    @strawberry.mutation(
        description="Answer the last question again with a new run (the earlier answer stays). "
        "Only for the conversation's last answer, once it has ended (NOT_LAST_ANSWER, "
        "ANSWER_IN_PROGRESS)." + _OWN
    )
    async def regenerate_answer(
        self, info: Info, input: Annotated[RegenerateAnswerInput, INPUT]
    ) -> RegenerateAnswerPayload:
        async def work() -> dict[str, Any]:
            result = await info.context.run(
                REGENERATE_ANSWER,
                message_id=decode_id(input.message_id, "Message", field="messageId"),
            )
            return {"answer": Message.of(result.answer), "run": Run.of(result.run)}

        return await as_payload(RegenerateAnswerPayload, work())
