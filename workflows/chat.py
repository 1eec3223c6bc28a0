"""Ask (screen 9): the conversation calls the API makes, and the `answer_question` run."""

from services import answers, chat
from workflows.declare import api_workflow, run_workflow

LIST_CONVERSATIONS = api_workflow(chat.list_conversations)
LOAD_CONVERSATIONS = api_workflow(chat.conversations_by_ids)
LIST_MESSAGES = api_workflow(chat.list_messages)
LOAD_MESSAGES = api_workflow(chat.messages_by_ids)
LOAD_CITATIONS = api_workflow(chat.citations_by_message_ids)
LOAD_MY_FEEDBACK = api_workflow(chat.my_feedback_by_message_ids)
REQUIRE_ANSWER = api_workflow(chat.require_answer)
CREATE_CONVERSATION = api_workflow(chat.create_conversation)
RENAME_CONVERSATION = api_workflow(chat.rename_conversation)
DELETE_CONVERSATION = api_workflow(chat.delete_conversation)
ASK_QUESTION = api_workflow(chat.ask_question)
STOP_ANSWER = api_workflow(chat.stop_answer)
RATE_ANSWER = api_workflow(chat.rate_answer)
REGENERATE_ANSWER = api_workflow(chat.regenerate_answer)

ANSWER_QUESTION = run_workflow(
    answers.ANSWER_QUESTION,
    {
        "RETRIEVING": answers.retrieving,
        "PROMPTING": answers.prompting,
        "GENERATING": answers.generating,
        "CHECKING": answers.checking,
        "STORING": answers.storing,
    },
)
