"""Input handling of the LLM nodes that needs no model: boxing user text, validating messages."""

from __future__ import annotations

import pytest
from kailash.runtime.template_resolver import resolve_templates

from base.errors import Invalid
from nodes.llm import LLMChatNode, LLMEmbedNode, LLMStructuredNode, Verbatim, _messages


def test_the_sdk_expands_templates_inside_lists_of_dicts() -> None:
    """Why the nodes box their inputs: a plain list of dicts is not safe in kailash 2.65."""
    inputs = {"messages": [{"role": "user", "content": "about ${model}"}], "model": "m1"}
    assert resolve_templates(inputs, inputs)["messages"][0]["content"] == "about m1"


def test_a_boxed_value_is_left_alone() -> None:
    box = Verbatim([{"role": "user", "content": "about ${model}"}])
    resolved = resolve_templates({"messages": box, "model": "m1"}, {"model": "m1"})
    assert resolved["messages"] is box
    assert box.value[0]["content"] == "about ${model}"
    assert "about" not in repr(box)  # the SDK formats inputs for its debug log


def test_each_node_boxes_its_user_content() -> None:
    assert LLMChatNode.verbatim_inputs == ("messages",)
    assert LLMStructuredNode.verbatim_inputs == ("messages",)
    assert LLMEmbedNode.verbatim_inputs == ("texts",)


def test_messages_are_copied_to_role_and_content() -> None:
    given = [
        {"role": "system", "content": "be brief", "extra": 1},
        {"role": "user", "content": "${x}"},
    ]
    assert _messages(Verbatim(given)) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "${x}"},
    ]
    assert _messages(given) == _messages(Verbatim(given))


@pytest.mark.parametrize(
    "bad",
    [[], "hello", [{"role": "user"}], [{"role": "user", "content": 3}], [{"content": "hi"}], None],
)
def test_malformed_messages_are_invalid(bad) -> None:
    with pytest.raises(Invalid) as caught:
        _messages(Verbatim(bad))
    assert caught.value.field == "messages"
