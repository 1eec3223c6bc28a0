"""The install step of the embedding model (`make models`): the cached GGUF, its manifest, a
second run that does nothing, and a conversion from the wheel's files checked end to end."""

from __future__ import annotations

import json

import pytest

from model_server import embedding_model

pytestmark = pytest.mark.timeout(300)


def test_the_cached_model_is_the_one_its_manifest_describes() -> None:
    path = embedding_model.cached()
    assert path == embedding_model.gguf_path()
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["sources"] == embedding_model.SOURCE_SHA256
    assert manifest["recipe"] == embedding_model.RECIPE
    assert manifest["gguf_sha256"] == embedding_model.sha256_of(path)
    assert manifest["check_cosine"] >= embedding_model.MIN_COSINE


def test_a_second_install_leaves_the_cached_file_alone() -> None:
    path = embedding_model.gguf_path()
    before = path.stat()
    assert embedding_model.install(quiet=True) == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )


@pytest.mark.slow
def test_the_wheels_files_convert_to_a_model_that_passes_the_check(tmp_path) -> None:
    source = embedding_model.source_dir()
    embedding_model.verify_sources(source)
    out = tmp_path / "all-MiniLM-L6-v2.q8_0.gguf"
    embedding_model.convert(source, out, "q8_0")
    assert embedding_model.check(out, source) >= embedding_model.MIN_COSINE
    # the conversion is deterministic: the same bytes as the cached model
    assert embedding_model.sha256_of(out) == embedding_model.sha256_of(embedding_model.gguf_path())
