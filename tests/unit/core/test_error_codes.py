"""Every code a service can raise is a member of the schema's ErrorCode enum."""

import re
from pathlib import Path

from app.services import errors
from resolvers.core.errors import ErrorCode

ROOT = Path(__file__).resolve().parents[3]


def test_codes_raised_in_app_are_in_the_enum():
    source = "\n".join(p.read_text() for p in (ROOT / "app").rglob("*.py"))
    raised = set(re.findall(r'\bcode="([A-Z_]+)"', source))
    defaults = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.DomainError)
    }
    assert raised, "the pattern found nothing: the test would pass vacuously"
    missing = (raised | defaults) - {member.name for member in ErrorCode}
    assert missing == set()
