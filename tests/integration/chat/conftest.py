"""Ask tests: the app's settings with a blob store of the test's own and the suite's model
server on both databases; short answers, so that each test's work for the model stays small."""

from __future__ import annotations

from typing import Any

import pytest

from base.settings import Settings
from tests.support.app_fixtures import changed

# Enough for an answer to cite and to be stopped mid-way; the default (256) is for people.
ANSWER_TOKENS = 40
# The model server is shared with the whole suite on 2 cores: a prompt's evaluation and a
# query's embedding can take far longer than the defaults allow (60 s, 2 s). Tests of a model
# that is down stop the server instead (its port refuses at once).
SLOW_MACHINE = {"llm_timeout_seconds": 600.0, "search_embed_timeout_seconds": 60.0}


@pytest.fixture
def settings(settings: Settings, tmp_path: Any) -> Settings:
    return changed(
        settings,
        blob_root=str(tmp_path / "blobs"),
        ask_answer_tokens=ANSWER_TOKENS,
        **SLOW_MACHINE,
    )


@pytest.fixture
def any_db_settings(any_db_settings: Settings, tmp_path: Any, ollama_host: str) -> Settings:
    return changed(
        any_db_settings,
        blob_root=str(tmp_path / "blobs"),
        ollama_host=ollama_host,
        ask_answer_tokens=ANSWER_TOKENS,
        **SLOW_MACHINE,
    )
