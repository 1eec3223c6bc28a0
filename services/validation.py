"""Input rules shared by services: one definition of a valid email, name and so on."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from base.errors import Invalid

MAX_EMAIL = 254
MAX_NAME = 200


def clean_email(value: str, *, field: str = "email") -> str:
    """Normalised (lower-cased) email, or Invalid(INVALID_EMAIL)."""
    if len(value) > MAX_EMAIL:
        raise Invalid("This email address is too long.", code="INVALID_EMAIL", field=field)
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(
            "This is not a valid email address.", code="INVALID_EMAIL", field=field
        ) from exc
    return result.normalized.lower()


def _trimmed(value: str, *, field: str, max_length: int) -> str:
    """`value` without surrounding blanks, or Invalid(TOO_LONG) past max_length characters."""
    text = value.strip()
    if len(text) > max_length:
        raise Invalid(f"Use at most {max_length} characters.", code="TOO_LONG", field=field)
    return text


def clean_name(value: str, *, field: str, max_length: int = MAX_NAME) -> str:
    """A display name: trimmed, 1..max_length characters, no control characters."""
    text = _trimmed(value, field=field, max_length=max_length)
    if not text:
        raise Invalid("This cannot be empty.", code="REQUIRED", field=field)
    return refuse_control_characters(text, field=field)


def clean_paragraphs(value: str, *, field: str, max_length: int) -> str:
    """Free text (a summary, a description, a question): trimmed, at most max_length
    characters, no control characters but tabs and line breaks; may be empty."""
    text = _trimmed(value, field=field, max_length=max_length)
    return refuse_control_characters(text, field=field, line_breaks=True)


def clean_filter_text(value: str, *, field: str, max_length: int) -> str:
    """Text a list is filtered by (a tag, a title's words, a tag's beginning): trimmed, at most
    max_length characters (the longest value it is matched against: a longer one could match
    nothing, and SQLite refuses a LIKE pattern over 50,000 bytes), no control characters."""
    return refuse_control_characters(
        _trimmed(value, field=field, max_length=max_length), field=field
    )


# Free text keeps its tabs and line breaks.
_LINE_CONTROLS = frozenset("\t\n\r")


def refuse_control_characters(text: str, *, field: str, line_breaks: bool = False) -> str:
    """`text` as it is, or Invalid(INVALID) when it holds a control character (tabs and line
    breaks allowed with `line_breaks`). No name, title, tag or paragraph we store holds one, so
    a filter holding one matches nothing either; and PostgreSQL's text cannot hold NUL at all, so
    without this rule a NUL failed at the database as INTERNAL."""
    allowed = _LINE_CONTROLS if line_breaks else frozenset()
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text):
        raise Invalid("This contains control characters.", code="INVALID", field=field)
    return text
