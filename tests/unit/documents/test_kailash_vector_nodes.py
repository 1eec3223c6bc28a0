"""What the Kailash SDK's own embedding and vector-store nodes do (the evidence of ADR 0051).

These tests pin the SDK's behaviour (kailash 2.65.0) that made EMBEDDING call `services.llm.embed`
and store vectors in `chunk_vectors` instead of using the nodes. If an upgrade changes it, a test
here fails, and ADR 0051 is to be revisited.
"""

from __future__ import annotations

import inspect

import pytest
from kailash.nodes.data.async_vector import AsyncPostgreSQLVectorNode
from kailash.nodes.data.vector_db import EmbeddingNode
from kailash.sdk_exceptions import NodeExecutionError


def test_embedding_node_has_no_model_behind_it() -> None:
    node = EmbeddingNode(model="custom", model_name="all-minilm")
    # The configuration given is not kept: the defaults name an OpenAI model.
    assert (node.config.get("model"), node.config.get("model_name")) == (
        "openai",
        "text-embedding-ada-002",
    )
    with pytest.raises(AttributeError):
        node.configure({"model": "custom", "model_name": "all-minilm"})
    with pytest.raises(NodeExecutionError, match="does not include a real embedding model"):
        node.execute({"texts": ["a passage of a document"]})


def test_embedding_node_knows_no_ollama_provider() -> None:
    source = inspect.getsource(EmbeddingNode._initialize_model)
    assert '["openai", "huggingface", "cohere", "custom"]' in source
    assert "ollama" not in source.lower()


def test_the_async_vector_node_needs_pgvector() -> None:
    """Its table has a `vector(n)` column and it creates the `vector` extension: pgvector, which
    PostgreSQL 15 on Debian 12 does not package here, and there is no SQLite path."""
    assert "CREATE EXTENSION IF NOT EXISTS vector" in inspect.getsource(
        AsyncPostgreSQLVectorNode._ensure_extension
    )
    assert "vector({dimension})" in inspect.getsource(AsyncPostgreSQLVectorNode._create_table)
