"""Real documents installed on the machine, and hostile files derived from them.

Every package named here is installed by scripts/ensure-system-packages.sh (`make test`):
python3.11-doc (HTML), bzip2-doc and shared-mime-info (PDF), postgresql-common (Markdown), and
apt, which Debian always has (translated messages for the charset and language tests).
"""

from __future__ import annotations

import gettext
import gzip
import io
import re
import zlib
from pathlib import Path

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
