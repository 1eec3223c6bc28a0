"""Every code a service can raise is a member of the schema's ErrorCode enum."""

import re
from pathlib import Path

from base import errors
from resolvers.core.errors import TRANSPORT_CODES, ErrorCode

ROOT = Path(__file__).resolve().parents[3]


def test_codes_raised_below_the_api_are_in_the_enum():
    packages = ("services", "base", "runtime", "nodes")
    source = "\n".join(p.read_text() for d in packages for p in (ROOT / d).rglob("*.py"))
    raised = set(re.findall(r'\bcode="([A-Z_]+)"', source))
    defaults = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.DomainError)
    }
    assert raised, "the pattern found nothing: the test would pass vacuously"
    missing = (raised | defaults) - {member.name for member in ErrorCode}
    assert missing == set()


def test_transport_codes_are_declared_and_documented():
    """Codes the transport answers with are in TRANSPORT_CODES (or ErrorCode) and in the table of
    top-level codes in docs/graphql-conventions.md, and the table names nothing else."""
    sources = (
        "app/http.py",
        "resolvers/router.py",
        "resolvers/core/transport.py",
        "resolvers/core/multipart.py",
    )
    text = "\n".join((ROOT / path).read_text() for path in sources)
    used = set(re.findall(r'"([A-Z]+(?:_[A-Z]+)+)"', text))
    assert {"PREFLIGHT_REQUIRED", "UNSUPPORTED_MEDIA_TYPE", "TOO_MANY_SUBSCRIPTIONS"} <= used
    enum = {member.name for member in ErrorCode}
    assert used - set(TRANSPORT_CODES) - enum == set()

    conventions = (ROOT / "docs" / "graphql-conventions.md").read_text()
    section = conventions.split("### Top-level `extensions.code`")[1].split("\n\n")[2]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE))
    # TOO_MANY_FILES is also a mutation's code: the transport answers it for far too many files.
    assert used & enum == {"NOT_FOUND", "TOO_MANY_FILES"}
    assert documented == set(TRANSPORT_CODES) | {"NOT_FOUND", "TOO_MANY_FILES"}
