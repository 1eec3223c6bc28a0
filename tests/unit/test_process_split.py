"""How the suite is shared between test processes (tests/support/process_split.py, ADR 0145)."""

from __future__ import annotations

import pytest

PLUGIN = ("-p", "tests.support.process_split", "-p", "no:randomly")
INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
markers =
    slow: takes half a minute or more
"""


def test_modules_are_collected_longest_first_by_their_slow_marks(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_a="def test_one(): pass\ndef test_two(): pass\n",
        test_b=(
            "import pytest\ndef test_one(): pass\n"
            "@pytest.mark.slow(seconds=40)\ndef test_two(): pass\n"
        ),
        test_c="import pytest\n@pytest.mark.slow\ndef test_one(): pass\n",
        test_d="import pytest\npytestmark = pytest.mark.slow(seconds=300)\ndef test_one(): pass\n",
        test_e="def test_one(): pass\n",
    )

    result = pytester.runpytest(*PLUGIN, "--collect-only", "-q")

    assert result.ret == pytest.ExitCode.OK
    collected = [line for line in result.outlines if "::" in line]
    assert collected == [
        "test_d.py::test_one",
        "test_b.py::test_one",
        "test_b.py::test_two",
        "test_a.py::test_one",
        "test_a.py::test_two",
        "test_c.py::test_one",
        "test_e.py::test_one",
    ]


@pytest.mark.parametrize("variable", ["TEST_DATABASE_URL", "TEST_REDIS_URL"])
def test_a_shared_server_with_two_test_processes_is_refused(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_a="def test_one(): pass\n")
    monkeypatch.setenv(variable, "postgresql://127.0.0.1:1/none")

    refused = pytester.runpytest(*PLUGIN, "-n", "2", "--collect-only", "-q")
    one_process = pytester.runpytest(*PLUGIN, "-n", "0", "--collect-only", "-q")

    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        f"each test empties the server named by {variable}, which every test process would "
        "share" in refused.stderr.str()
    )
    assert one_process.ret == pytest.ExitCode.OK
