"""Every code a service can raise is a member of the schema's ErrorCode enum."""

import re
from pathlib import Path

from base import errors
from resolvers.core.errors import ErrorCode

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
