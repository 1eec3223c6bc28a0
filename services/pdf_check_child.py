"""The child process of `services.extraction.check_pdf_isolated`: opens a PDF with PDFium under
the same limits as the extraction child (`services.extraction_child.serve`), and replies
`{"ok": {"pages": N}}` or the error of `extraction.open_pdf`.

    python -m services.pdf_check_child MEMORY_MB CPU_SECONDS < header-line + bytes
"""

from __future__ import annotations

import sys
from typing import Any

from services.extraction_child import serve


def load_pdfium(data: bytes, filename_hint: str | None) -> None:
    import pypdfium2  # noqa: F401  (imported before the fork, as the extraction child does)


def page_count(data: bytes, filename_hint: str | None) -> dict[str, Any]:
    from services.extraction import open_pdf

    document = open_pdf(data)
    try:
        return {"pages": len(document)}
    finally:
        document.close()


if __name__ == "__main__":
    sys.exit(serve(load_pdfium, page_count, sys.argv[1:]))
