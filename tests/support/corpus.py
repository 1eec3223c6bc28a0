"""Real documents installed on the machine, and hostile files derived from them.

Every package named here is installed by scripts/ensure-system-packages.sh (`make test`):
python3.11-doc (HTML), bzip2-doc and shared-mime-info (PDF), postgresql-common (Markdown), and
apt, which Debian always has (translated messages for the charset and language tests).
"""

from __future__ import annotations

import gettext
import gzip
import io
import math
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from services import chunking, extraction

HTML_ROOT = Path("/usr/share/doc/python3.11-doc/html")
VENV_HTML = HTML_ROOT / "library" / "venv.html"
CONTROLFLOW_HTML = HTML_ROOT / "tutorial" / "controlflow.html"
BZIP2_PDF = Path("/usr/share/doc/bzip2/manual.pdf.gz")  # bzip2-doc; no outline
MIME_SPEC_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")  # an outline
POSTGRES_README_MD = Path("/usr/share/doc/postgresql-common/README.md.gz")


def read(path: Path) -> bytes:
    """The file's bytes, gunzipped when it ends in .gz."""
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


def html_pages() -> list[Path]:
    return sorted(HTML_ROOT.rglob("*.html"))


# --- sections of real pages, as documents --------------------------------------------------------

MAX_TITLE = 300  # base.models.documents.MAX_TITLE


@dataclass(frozen=True)
class Section:
    """A section of a documentation page as a document: the heading is its title, the text is
    the heading line and what follows up to the next heading (of any level), and its chunks are
    that text cut by the app's chunker (exact slices of it, under the heading)."""

    page: str  # relative to HTML_ROOT, e.g. "library/venv.html"
    title: str
    text: str
    chunks: tuple[chunking.Chunk, ...]


def page_sections(
    path: Path,
    *,
    target_chunks: int | None = None,
    min_chunks: int = 1,
    max_chunks: int | None = None,
) -> list[Section]:
    """The sections of a page, read by the app's own extraction (services/extraction.parse).

    By default each is chunked with the app's token budget. With `target_chunks`, the budget is
    picked per section (16 to the app's budget) so that it gives about that many chunks; with
    `max_chunks`, the text is cut where the last kept chunk ends. Sections that give fewer than
    `min_chunks` are left out."""
    extracted = extraction.parse(read(path), path.name)
    headings = extracted.headings
    sections = []
    for n, heading in enumerate(headings):
        end = headings[n + 1].offset if n + 1 < len(headings) else len(extracted.text)
        text = extracted.text[heading.offset : end].rstrip()
        title = heading.title[:MAX_TITLE]
        budget = chunking.DEFAULT_MAX_TOKENS
        if target_chunks is not None:
            wanted = math.ceil(chunking.estimate_tokens(text) / target_chunks)
            budget = max(16, min(chunking.DEFAULT_MAX_TOKENS, wanted))
        chunks = chunking.chunk(text, [extraction.Heading(1, title, 0)], max_tokens=budget)
        if len(chunks) < min_chunks:
            continue
        if max_chunks is not None and len(chunks) > max_chunks:
            chunks = chunks[:max_chunks]
            text = text[: chunks[-1].char_end]
        sections.append(Section(str(path.relative_to(HTML_ROOT)), title, text, tuple(chunks)))
    return sections


def corpus_sections(wanted: int, **options: int) -> list[Section]:
    """Distinct sections (page_sections with `options`) of the HTML pages taken in a fixed
    shuffled order, until there are `wanted` or every page has been read."""
    pages = html_pages()
    if not pages:
        raise RuntimeError(f"no HTML pages under {HTML_ROOT}: install python3.11-doc (make system)")
    random.Random(11).shuffle(pages)
    seen: set[str] = set()
    sections: list[Section] = []
    for page in pages:
        for section in page_sections(page, **options):
            if section.text not in seen:
                seen.add(section.text)
                sections.append(section)
        if len(sections) >= wanted:
            break
    return sections


def apt_messages(language: str, count: int) -> str:
    """`count` translated messages of apt (sorted by their English key), printf placeholders
    removed, one per line."""
    with Path(f"/usr/share/locale/{language}/LC_MESSAGES/apt.mo").open("rb") as fp:
        catalog = gettext.GNUTranslations(fp)
    raw: dict[object, object] = catalog._catalog  # type: ignore[attr-defined]
    lines = []
    for key in sorted(raw, key=str):
        value = raw[key]
        if isinstance(value, str) and key and len(value) > 30:
            lines.append(" ".join(re.sub(r"%[-0-9.]*[a-zA-Z]", "", value).split()))
        if len(lines) == count:
            break
    return "\n".join(lines)


def encrypted(pdf: bytes, *, user_password: str) -> bytes:
    """The PDF encrypted with AES-256 by pypdf (an empty user password opens without one)."""
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_with_content(content: bytes) -> bytes:
    """A valid one-page PDF whose page content stream is `content`, Flate-compressed."""
    stream = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def pdf_bomb() -> bytes:
    """A 580 KB PDF whose content stream inflates to 400 MB of text-showing operators: PDFium
    needs several GB to extract its text."""
    return pdf_with_content(b"BT /F1 12 Tf 72 700 Td " + b"(A) Tj " * (400_000_000 // 7) + b"ET")
