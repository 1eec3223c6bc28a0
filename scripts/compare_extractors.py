"""Compare the candidate PDF and HTML text extractors on the real corpus (ADR 0030).

Not part of the app or the tests. The candidates that the project does not depend on are added
for the one run:

    uv run --frozen --with pdfminer.six==20260107 --with lxml==6.1.3 \
        --with lxml_html_clean==0.4.6 --with trafilatura==2.3.1 --with inscriptis==2.7.6 \
        --with beautifulsoup4==4.15.0 --with justext==3.0.2 \
        python scripts/compare_extractors.py [--html]

(pypdf is already a dev dependency.) `--html` runs the HTML comparison only.

Corpus: the 530 pages of the Python 3.11 documentation (python3.11-doc) and the PDFs that Debian
documentation packages ship under /usr/share/doc (gunzipped in memory): bzip2-doc, libtasn1-doc,
shared-mime-info, fontconfig, valgrind and zlib1g-dev (the last is not installed by
scripts/ensure-system-packages.sh; `apt-get install zlib1g-dev` for this script).

"Probes" are sentences read on the rendered page by a person (ADR 0030 names the pages); a probe
counts as found when it occurs in the extracted text after whitespace is collapsed, with and
without joining words hyphenated across a line break.
"""

from __future__ import annotations

import gzip
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HTML_ROOT = Path("/usr/share/doc/python3.11-doc/html")
PDFS = [
    "/usr/share/doc/bzip2/manual.pdf.gz",
    "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
    "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
    "/usr/share/doc/fontconfig/fontconfig-user.pdf.gz",
    "/usr/share/doc/valgrind/valgrind_manual.pdf.gz",
    "/usr/share/doc/zlib1g-dev/crc-doc.1.0.pdf.gz",
]

PDF_PROBES = {
    # bzip2 manual, page 5 (printed page 2)
    "manual.pdf.gz": [
        "2. How to use bzip2",
        "This chapter contains a copy of the bzip2 man page, and nothing else.",
        "bzip2recover - recovers data from damaged bzip2 files",
        "bzip2 [ -cdfkqstvzVL123456789 ] [ filenames ... ]",
    ],
    # valgrind manual, page 11 (printed page vii): a table of contents with dot leaders
    "valgrind_manual.pdf.gz": [
        "7.4.2. Helgrind's Race Detection Algorithm",
        "8.2.6. Debugging C++11 Programs",
    ],
    # zlib1g-dev's CRC paper, page 3: justified text with words hyphenated across lines
    "crc-doc.1.0.pdf.gz": [
        "2 Related work",
        "Cyclic Redundancy Checks (CRCs) were proposed by Peterson and Brown [PB61] in 1961.",
        "In 1993, Black [Bla93] published a method that reads data by words (described in"
        " section 4.8); however, it still computes the CRC byte by byte in strong sequential"
        " order.",
        "The use of auxilary parameter v(x) allows incremental CRC computation as shown in"
        " section 3.1.",
    ],
}

HTML_PROBES = {
    "library/venv.html": [
        "Creation of virtual environments is done by executing the command venv:",
        "Creating virtual environments",
        "An example of extending EnvBuilder",
    ],
    "tutorial/controlflow.html": [
        "4.4. break and continue Statements, and else Clauses on Loops",
        "The break statement, like in C, breaks out of the innermost enclosing for or while loop.",
    ],
}

# Text that only the navigation, sidebar and footer of a Sphinx page carry.
BOILERPLATE = ["Previous topic", "Report a Bug", "Show Source", "Please donate", "Last updated on"]
# Text of the pages' <script> elements, and an entity left undecoded.
SCRIPT_TEXT = ["documentation_options", "DOCUMENTATION_OPTIONS", "&#8212;"]

DROP_TAGS = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form"]


def norm(text: str) -> str:
    return " ".join(text.split())


def dehyphen(text: str) -> str:
    """Join words hyphenated across lines: "de-\\nscribed" (pypdf, pdfminer), "de\\x02scribed"
    (PDFium marks the break with \\x02)."""
    return re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text.replace("\x02", ""))


def found(probe: str, text: str) -> bool:
    return norm(probe) in norm(text) or norm(probe) in norm(dehyphen(text))


# --- PDF -------------------------------------------------------------------------------------


def pdf_pypdfium2(data: bytes) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        return "\n".join(page.get_textpage().get_text_bounded() for page in doc)
    finally:
        doc.close()


def pdf_pypdf(data: bytes) -> str:
    import io

    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def pdf_pdfminer(data: bytes) -> str:
    import io

    from pdfminer.high_level import extract_text

    return str(extract_text(io.BytesIO(data)))


# --- HTML ------------------------------------------------------------------------------------


def html_selectolax(html: str) -> str:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    root = tree.css_first("main, [role=main], article") or tree.body
    assert root is not None
    for node in root.css(", ".join([*DROP_TAGS, "[role=navigation]", "a.headerlink"])):
        node.decompose()
    return str(root.text(separator="\n"))


def html_lxml(html: str) -> str:
    import lxml.html

    doc = lxml.html.document_fromstring(html)
    found_main = doc.xpath("//main | //*[@role='main'] | //article")
    root = found_main[0] if found_main else doc.body
    for el in root.xpath(
        " | ".join(f".//{t}" for t in DROP_TAGS)
        + " | .//*[@role='navigation'] | .//a[@class='headerlink']"
    ):
        el.drop_tree()
    return "\n".join(t for t in root.itertext())


def html_bs4(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.body
    assert root is not None
    for el in root.find_all([*DROP_TAGS]):
        el.decompose()
    for el in root.find_all("a", class_="headerlink"):
        el.decompose()
    return str(root.get_text("\n"))


def html_trafilatura(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, include_tables=True, include_comments=False) or ""


def html_inscriptis(html: str) -> str:
    from inscriptis import get_text

    return str(get_text(html))


def html_justext(html: str) -> str:
    import justext

    paragraphs = justext.justext(html.encode(), justext.get_stoplist("English"))
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def html_ours(html: str) -> str:
    from services.extraction import parse

    return parse(html.encode(), "page.html").text


# --- measuring -------------------------------------------------------------------------------


def pdf_bytes(path: str) -> bytes:
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if path.endswith(".gz") else raw


def heading_texts(html: str) -> list[str]:
    """The h1-h6 texts inside the page's main region (the expected headings)."""
    import lxml.html

    doc = lxml.html.document_fromstring(html)
    main = doc.xpath("//*[@role='main']")
    if not main:
        return []
    out = []
    for h in main[0].xpath(".//h1 | .//h2 | .//h3 | .//h4 | .//h5 | .//h6"):
        for a in h.xpath(".//a[@class='headerlink']"):
            a.drop_tree()
        text = norm(h.text_content())
        if text:
            out.append(text)
    return out


def compare_pdf(candidates: dict[str, Callable[[bytes], str]]) -> None:
    files = {Path(p).name: pdf_bytes(p) for p in PDFS}
    print("| PDF library | " + " | ".join(files) + " | probes found | ligatures | total s |")
    for name, fn in candidates.items():
        times = []
        cells = []
        probes = 0
        total_probes = 0
        ligatures = 0
        for fname, data in files.items():
            started = time.perf_counter()
            text = fn(data)
            elapsed = time.perf_counter() - started
            times.append(elapsed)
            cells.append(f"{elapsed * 1000:.0f} ms / {len(text) // 1000} k")
            ligatures += sum(text.count(c) for c in "\ufb00\ufb01\ufb02\ufb03\ufb04")
            for probe in PDF_PROBES.get(fname, []):
                total_probes += 1
                probes += found(probe, text)
                if not found(probe, text):
                    print(f"   {name} misses {probe!r}")
        print(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {probes}/{total_probes} | {ligatures} | {sum(times):.2f} |"
        )


def compare_html(candidates: dict[str, Callable[[str], str]]) -> None:
    pages = sorted(HTML_ROOT.rglob("*.html"))
    docs = {str(p.relative_to(HTML_ROOT)): p.read_text(encoding="utf-8") for p in pages}
    expected = {k: heading_texts(v) for k, v in docs.items()}
    n_headings = sum(len(v) for v in expected.values())
    print(f"{len(docs)} pages, {n_headings} headings in the main regions")
    print(
        "| HTML library | ms/page (median) | total s | pages with nav/footer text"
        " | pages with script/entity text | headings kept as a line | probes found |"
    )
    for name, fn in candidates.items():
        times = []
        boiler = script = kept = probes = total_probes = 0
        for key, html in docs.items():
            started = time.perf_counter()
            text = fn(html)
            times.append(time.perf_counter() - started)
            boiler += any(m in text for m in BOILERPLATE)
            script += any(m in text for m in SCRIPT_TEXT)
            lines = {norm(line) for line in text.splitlines()}
            kept += sum(h in lines for h in expected[key])
            for probe in HTML_PROBES.get(key, []):
                total_probes += 1
                probes += found(probe, text)
                if not found(probe, text):
                    print(f"   {name} misses {probe!r} in {key}")
        print(
            f"| {name} | {statistics.median(times) * 1000:.1f} | {sum(times):.1f} | {boiler} "
            f"| {script} | {kept}/{n_headings} | {probes}/{total_probes} |"
        )


def main() -> None:
    if sys.argv[1:] != ["--html"]:  # --html: the HTML comparison only
        compare_pdf({"pypdfium2": pdf_pypdfium2, "pypdf": pdf_pypdf, "pdfminer.six": pdf_pdfminer})
    html: dict[str, Callable[[str], str]] = {
        "selectolax (lexbor)": html_selectolax,
        "lxml": html_lxml,
        "beautifulsoup4 (html.parser)": html_bs4,
        "trafilatura": html_trafilatura,
        "inscriptis": html_inscriptis,
        "justext": html_justext,
    }
    try:
        import services.extraction  # noqa: F401

        html["ours (services.extraction)"] = html_ours
    except ImportError:
        pass
    compare_html(html)


if __name__ == "__main__":
    main()
