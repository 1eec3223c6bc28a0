"""EXTRACTING: the plain text of an uploaded document, with its headings (ADR 0030, 0031).

The type comes from the bytes: `%PDF-` for PDF, the WHATWG sniffing rules for HTML, and for the
rest a decode (BOM, UTF-8, then charset detection) and a look at the lines to tell Markdown from
plain text. A file name is only a hint between Markdown and plain text.

`extract` parses in this process. `extract_isolated` runs the parser in a child process
(`services.extraction_child`) with an address-space limit and a deadline, so that a hostile file
cannot hang or crash the worker, and detects the language in this process.

Every refusal is a `base.errors.Invalid` with one of the codes in `ERROR_CODES`.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import json
import os
import re
import signal
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from base.errors import Invalid

if TYPE_CHECKING:
    import asyncio

    from markdown_it.token import Token
    from selectolax.lexbor import LexborNode

ContentType = Literal["pdf", "html", "markdown", "text"]

ERROR_CODES = {
    "EMPTY_FILE": "The file is empty.",
    "UNSUPPORTED_TYPE": "This is not a PDF, HTML, Markdown or text file.",
    "UNDECODABLE_TEXT": "The text is in no character encoding that could be recognised.",
    "PDF_ENCRYPTED": "The PDF is protected by a password.",
    "PDF_BROKEN": "The PDF is damaged or incomplete.",
    "NO_TEXT": "The document contains no text.",
    "EXTRACTION_TIMEOUT": "Reading the document took too long.",
    "EXTRACTION_TOO_LARGE": "Reading the document needed too much memory.",
    "EXTRACTION_FAILED": "The document could not be read.",
}

CHILD_MODULE = "services.extraction_child"
PDF_CHECK_MODULE = "services.pdf_check_child"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 1024
MAX_TITLE = 200
MAX_TEXT_CHARS = 20_000_000

MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".mkdn")
TEXT_SUFFIXES = (".txt", ".text")


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading: its level (1 = top), its title, and where its line starts in the text."""

    level: int
    title: str
    offset: int


@dataclass(frozen=True, slots=True)
class Extracted:
    """The result of EXTRACTING.

    `text` is plain text (never markup): paragraphs are separated by a blank line, lines by
    `\\n`, and it is NFC-normalised. Heading offsets index into `text`, in increasing order.
    `page_offsets` (PDF only) is where each page starts in `text`. `language` is an ISO 639-1
    code, or None when the text is too short to tell. `encoding` is the charset the bytes were
    decoded with (None for PDF).
    """

    text: str
    content_type: ContentType
    title: str | None
    headings: tuple[Heading, ...]
    word_count: int
    language: str | None = None
    page_count: int | None = None
    page_offsets: tuple[int, ...] = field(default=())
    encoding: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Extracted:
        return cls(
            text=data["text"],
            content_type=data["content_type"],
            title=data["title"],
            headings=tuple(Heading(**h) for h in data["headings"]),
            word_count=data["word_count"],
            language=data["language"],
            page_count=data["page_count"],
            page_offsets=tuple(data["page_offsets"]),
            encoding=data["encoding"],
        )


def fail(code: str, detail: str | None = None) -> Invalid:
    message = ERROR_CODES[code] if detail is None else f"{ERROR_CODES[code]} {detail}"
    return Invalid(message, code=code, field="file")


# --- type detection --------------------------------------------------------------------------

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# WHATWG MIME sniffing, "identify an unknown MIME type", the HTML patterns: the first tag
# (after whitespace) followed by a space or ">".
_HTML_START = re.compile(
    rb"\s*(?:<!DOCTYPE HTML|<HTML|<HEAD|<SCRIPT|<IFRAME|<H1|<DIV|<FONT|<TABLE|<A|<STYLE|<TITLE"
    rb"|<B|<BODY|<BR|<P|<!--)(?:[ \t\n\f\r>]|(?<=--))",
    re.IGNORECASE,
)
# A whole HTML document: its first tag, after whitespace, an XML declaration and comments, is
# one that only a document has. This wins over a Markdown hint (Markdown may embed HTML blocks,
# not a document).
_HTML_DOCUMENT = re.compile(
    rb"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!DOCTYPE\s+HTML|<HTML|<HEAD|<BODY)[\s>]",
    re.IGNORECASE | re.DOTALL,
)

_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_MD_SETEXT = re.compile(r"^\S.*\n {0,3}(?:=+|-{2,})[ \t]*$", re.MULTILINE)
_MD_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)
_MD_LINK = re.compile(r"\[[^\]\n]+\]\([^)\s]+\)|^\s{0,3}\[[^\]]+\]:\s*\S+", re.MULTILINE)
_MD_LIST = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+\S", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(?:\*\*|__)\S[^\n]*?\S(?:\*\*|__)|`[^`\n]+`")


def detect_type(data: bytes, filename_hint: str | None = None) -> ContentType:
    """The type of `data`, from its bytes: "pdf", "html", "markdown" or "text".

    Raises Invalid with EMPTY_FILE, UNSUPPORTED_TYPE (binary or unknown bytes),
    UNDECODABLE_TEXT or PDF_BROKEN (a PDF cut short). `filename_hint` only decides between
    Markdown and plain text.
    """
    return _sniff(data, filename_hint)[0]


def _sniff(data: bytes, hint: str | None) -> tuple[ContentType, str | None, str | None]:
    """(type, decoded text or None for PDF, encoding)."""
    if not data:
        raise fail("EMPTY_FILE")
    start = data.find(b"%PDF-", 0, 1024)
    if start >= 0 and (not data[:start].strip() or _looks_binary(data)):
        # A truncated file, told from its bytes alone (so an upload refuses it): PDFium would
        # rebuild what it can of it instead.
        if b"%%EOF" not in data[-1024:].rstrip():
            raise fail("PDF_BROKEN", "(it ends before its end-of-file marker)")
        return "pdf", None, None
    text, encoding = decode_text(data)
    head = data[:1024] if encoding in ("utf-8", "utf-8-sig", "ascii") else _ascii_head(text)
    head = head.removeprefix(codecs.BOM_UTF8)
    if _HTML_DOCUMENT.match(head) or (
        _HTML_START.match(head) and not _hint_is(hint, MARKDOWN_SUFFIXES)
    ):
        return "html", text, encoding
    if _hint_is(hint, MARKDOWN_SUFFIXES):
        return "markdown", text, encoding
    if _hint_is(hint, TEXT_SUFFIXES):
        return "text", text, encoding
    return ("markdown" if looks_like_markdown(text) else "text"), text, encoding


def _ascii_head(text: str) -> bytes:
    return text[:1024].encode("ascii", errors="replace")


def _hint_is(hint: str | None, suffixes: tuple[str, ...]) -> bool:
    return hint is not None and hint.lower().rstrip().endswith(suffixes)


def looks_like_markdown(text: str) -> bool:
    """Markdown by its marks in the first 20,000 characters: two kinds of strong marks (ATX
    headings, links, fenced code), or one strong kind and two weak ones (setext underlines,
    list items, emphasis or inline code). Measured in ADR 0030: 230 of the 239 Markdown files
    under /usr/share/doc, and 5 of the 740 plain-text copyright files, pass."""
    sample = text[:20_000]
    strong = sum(1 for pattern in (_MD_HEADING, _MD_LINK) if pattern.search(sample)) + (
        len(_MD_FENCE.findall(sample)) >= 2
    )
    weak = sum(1 for pattern in (_MD_SETEXT, _MD_LIST, _MD_EMPHASIS) if pattern.search(sample))
    return strong >= 2 or (strong == 1 and weak >= 2)


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding): a BOM, else strict UTF-8, else UTF-8 with its few invalid bytes
    replaced (`_mostly_utf8`), else the charset chardet detects.

    Bytes with NUL or other control characters that text does not have are UNSUPPORTED_TYPE
    (a binary file); bytes that no detected charset decodes are UNDECODABLE_TEXT.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise fail("UNDECODABLE_TEXT", f"({encoding}: {exc.reason})") from exc
    if _looks_binary(data):
        raise fail("UNSUPPORTED_TYPE")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    mostly = _mostly_utf8(data)
    if mostly is not None:
        return mostly, "utf-8"
    import chardet

    detected = chardet.detect(data, max_bytes=1_000_000)["encoding"]
    if detected is None:
        raise fail("UNDECODABLE_TEXT")
    try:
        text = data.decode(detected)
    except (UnicodeDecodeError, LookupError) as exc:
        raise fail("UNDECODABLE_TEXT", f"({detected})") from exc
    if _has_control_characters(text):  # a best guess that yields control characters is wrong
        raise fail("UNDECODABLE_TEXT", f"({detected})")
    return text, codecs.lookup(detected).name


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 text with a few invalid bytes (a stray byte, a phrase pasted from a legacy
    charset), decoded with U+FFFD for each invalid sequence; None unless the well-formed
    multi-byte characters outnumber the invalid sequences. A legacy-charset guess for such a
    file garbles every other non-ASCII character ("CafÃ©"); text in a legacy charset has next
    to no well-formed UTF-8 sequences, so it still goes to the charset detection."""
    text = data.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd") - data.count("\ufffd".encode())  # less the U+FFFD it held
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    return text if non_ascii - invalid > invalid else None


def _has_control_characters(text: str) -> bool:
    """More than 1% of the first 10,000 characters are control characters (C0 or C1) other
    than tab, line feed, form feed and carriage return."""
    head = text[:10_000]
    controls = sum(1 for ch in head if unicodedata.category(ch) == "Cc" and ch not in "\t\n\f\r")
    return controls * 100 > len(head)


_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13)) + b"\x7f"


def _looks_binary(data: bytes) -> bool:
    """NUL anywhere in the first 8 KiB, or more than 1% control bytes there."""
    head = data[:8192]
    if b"\x00" in head:
        return True
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls * 100 > len(head)


# --- the text builder shared by HTML and Markdown --------------------------------------------


class _TextBuilder:
    """Plain text made of paragraphs and lines, with heading offsets.

    Breaks are pending until content follows, so the text never starts or ends with blank
    lines, never has more than one blank line in a row, and no line ends with a space.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._pending = 0  # 0 none, 1 line break, 2 paragraph break
        self._space = False
        self._heading: tuple[int, int, int] | None = None  # level, offset, index in _parts
        self.headings: list[Heading] = []

    def _emit(self, text: str) -> None:
        if self._length:
            if self._pending:
                self._put("\n" * self._pending)
            elif self._space:
                self._put(" ")
        self._pending = 0
        self._space = False
        if self._heading is not None and self._heading[1] < 0:
            self._heading = (self._heading[0], self._length, len(self._parts))
        self._put(text)

    def _put(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)

    def inline(self, text: str) -> None:
        """Running text: whitespace collapses to one space."""
        text = unicodedata.normalize("NFC", _strip_controls(text))
        if not text:
            return
        if text[0].isspace():
            self._space = True
        words = text.split()
        if words:
            self._emit(" ".join(words))
            self._space = text[-1].isspace()

    def literal(self, text: str) -> None:
        """Preformatted text (code): kept line by line with its indentation; trailing spaces
        and blank lines at both ends dropped, a run of blank lines kept as one."""
        text = unicodedata.normalize("NFC", _strip_controls(text.replace("\r\n", "\n")))
        lines = [line.rstrip() for line in text.split("\n")]
        blank = False
        first = True
        for line in lines:
            if not line:
                blank = not first
                continue
            if not first:
                self._pending = max(self._pending, 2 if blank else 1)
            self._emit(line)
            first = False
            blank = False

    def line_break(self) -> None:
        self._pending = max(self._pending, 1)
        self._space = False

    def paragraph_break(self) -> None:
        self._pending = 2
        self._space = False

    def start_heading(self, level: int) -> None:
        self.paragraph_break()
        self._heading = (level, -1, -1)

    def end_heading(self) -> None:
        if self._heading is not None:
            level, offset, index = self._heading
            title = " ".join("".join(self._parts[index:]).split()) if offset >= 0 else ""
            if offset >= 0 and title:
                self.headings.append(Heading(level=level, title=title, offset=offset))
            self._heading = None
        self.paragraph_break()

    def text(self) -> str:
        return "".join(self._parts)


# --- HTML ------------------------------------------------------------------------------------

# Removed with their content: active content, embedded objects, forms and the page's chrome.
_HTML_DROP = (
    "script, style, noscript, template, iframe, frame, frameset, object, embed, applet, svg,"
    " math, canvas, audio, video, map, form, button, input, select, textarea, nav, aside,"
    " dialog, [hidden], [aria-hidden=true], [role=navigation], [role=banner],"
    " [role=contentinfo], [role=search], [role=complementary], a.headerlink"
)
_HTML_PARAGRAPH = frozenset(
    [
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "blockquote",
        "pre",
        "table",
        "ul",
        "ol",
        "dl",
        "figure",
        "figcaption",
        "address",
        "details",
        "summary",
        "hr",
        "center",
        "fieldset",
        "legend",
        "caption",
        "body",
        "html",
    ]
)
_HTML_LINE = frozenset(["li", "dt", "dd", "tr", "br", "option"])
_HTML_CELL = frozenset(("td", "th"))
_HTML_HEADING = {f"h{n}": n for n in range(1, 7)}
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([-\w:.]+)", re.IGNORECASE)


def _decode_html(data: bytes, text: str, encoding: str) -> tuple[str, str]:
    """Re-decode with the page's own `<meta charset>` when it names another valid charset and
    the bytes were not valid UTF-8 (a BOM or valid UTF-8 wins, as in browsers)."""
    if encoding in ("utf-8", "utf-8-sig", "utf-16", "utf-32"):
        return text, encoding
    found = _META_CHARSET.search(data[:4096])
    if found is None:
        return text, encoding
    try:
        declared = codecs.lookup(found.group(1).decode("ascii")).name
        return data.decode(declared), declared
    except (LookupError, UnicodeDecodeError):
        return text, encoding


def _html_text(html: str) -> tuple[str, str | None, list[Heading]]:
    builder = _TextBuilder()
    title = _html_into(html, builder)
    headings = builder.headings
    if not title and headings:
        title = headings[0].title
    return builder.text(), title or None, headings


def _html_into(html: str, builder: _TextBuilder) -> str:
    """Walk the page's main region into `builder`; return the `<title>` ("" when none).

    The main region is `<main>` or `[role=main]`, else the first `<article>`, else `<body>`.
    Dropped with their content: `_HTML_DROP`, and the headers and footers that are not inside
    an article, main or section."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else ""
    root = tree.css_first("main, [role=main]") or tree.css_first("article") or tree.body
    if root is not None:
        for node in root.css(_HTML_DROP):
            node.decompose()
        for node in root.css("header, footer"):
            if not _inside_content(node):
                node.decompose()
        _walk_html(root, builder)
    return title


def _inside_content(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in ("article", "main", "section") or parent.attributes.get("role") == "main":
            return True
        parent = parent.parent
    return False


def _walk_html(root: LexborNode, builder: _TextBuilder) -> None:
    """Depth-first without recursion (a hostile page may nest elements very deeply)."""
    stack: list[tuple[LexborNode, bool]] = [(root, False)]
    pre_depth = 0
    pre_text: list[str] = []
    while stack:
        node, closing = stack.pop()
        tag = node.tag or ""
        if closing:
            if tag in _HTML_HEADING:
                builder.end_heading()
            elif tag == "pre":
                pre_depth -= 1
                if not pre_depth:
                    builder.paragraph_break()
                    builder.literal("".join(pre_text))
                    pre_text.clear()
                builder.paragraph_break()
            elif tag in _HTML_PARAGRAPH:
                builder.paragraph_break()
            elif tag in _HTML_LINE:
                builder.line_break()
            continue
        if tag == "-text":
            content = node.text_content or ""
            if pre_depth:
                pre_text.append(content)
            else:
                builder.inline(content)
            continue
        if tag.startswith("-") or tag.startswith("_"):
            continue  # comments, doctype
        if tag in _HTML_HEADING:
            builder.start_heading(_HTML_HEADING[tag])
        elif tag == "pre":
            pre_depth += 1
            builder.paragraph_break()
        elif tag in _HTML_PARAGRAPH:
            builder.paragraph_break()
        elif tag in _HTML_LINE:
            builder.line_break()
        elif tag in _HTML_CELL and _follows_cell(node):
            builder.inline(" | ")
        elif tag == "img":
            continue
        stack.append((node, True))
        children = list(_children(node))
        stack.extend((child, False) for child in reversed(children))


def _follows_cell(node: LexborNode) -> bool:
    sibling = node.prev
    while sibling is not None:
        if sibling.tag in _HTML_CELL:
            return True
        sibling = sibling.prev
    return False


def _children(node: LexborNode) -> Iterator[LexborNode]:
    child = node.child
    while child is not None:
        yield child
        child = child.next


# --- Markdown --------------------------------------------------------------------------------

_MD_PARAGRAPH_TOKENS = frozenset(
    (
        "paragraph_close",
        "bullet_list_close",
        "ordered_list_close",
        "table_open",
        "table_close",
        "blockquote_open",
        "blockquote_close",
        "hr",
    )
)
_INLINE_DROP = re.compile(
    r"<\s*(/?)\s*(script|style|noscript|template|iframe|object|embed|svg|textarea)\b", re.I
)


@functools.cache
def _markdown_parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _markdown_text(text: str) -> tuple[str, str | None, list[Heading]]:
    tokens: list[Token] = _markdown_parser().parse(text)
    builder = _TextBuilder()
    cells = 0
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            builder.start_heading(int(token.tag[1]))
        elif kind == "heading_close":
            builder.end_heading()
        elif kind == "inline":
            _markdown_inline(token.children or [], builder)
        elif kind in ("fence", "code_block"):
            builder.paragraph_break()
            builder.literal(token.content)
            builder.paragraph_break()
        elif kind == "html_block":
            builder.paragraph_break()
            _html_into(f"<body>{token.content}</body>", builder)
            builder.paragraph_break()
        elif kind == "list_item_open":
            builder.line_break()
        elif kind in ("tr_open",):
            builder.line_break()
            cells = 0
        elif kind in ("th_open", "td_open"):
            if cells:
                builder.inline(" | ")
            cells += 1
        elif kind in _MD_PARAGRAPH_TOKENS and not token.hidden:  # hidden: a tight list's items
            builder.paragraph_break()
    headings = builder.headings
    first = next((h for h in headings if h.level == 1), headings[0] if headings else None)
    return builder.text(), (first.title if first else None), headings


def _markdown_inline(children: list[Token], builder: _TextBuilder) -> None:
    dropping = 0
    for child in children:
        kind = child.type
        if kind == "html_inline":
            found = _INLINE_DROP.match(child.content)
            if found:
                dropping += -1 if found.group(1) else 1
                dropping = max(dropping, 0)
            continue
        if dropping:
            continue
        if kind in ("text", "code_inline", "image"):  # an image's content is its alt text
            builder.inline(child.content)
        elif kind in ("softbreak", "hardbreak"):
            builder.line_break()


# --- PDF -------------------------------------------------------------------------------------


def open_pdf(data: bytes) -> Any:
    """The PDF opened by PDFium (a `PdfDocument` the caller closes). Raises PDF_ENCRYPTED when it
    needs a password (one with an empty user password, or an owner password only, opens) and
    PDF_BROKEN when PDFium cannot read its structure even after rebuilding it."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise fail("PDF_ENCRYPTED") from exc
        raise fail("PDF_BROKEN", f"({exc})") from exc


def _pdf_text(data: bytes) -> tuple[str, str | None, list[Heading], tuple[int, ...]]:
    import pypdfium2 as pdfium

    document = open_pdf(data)
    try:
        pages: list[str] = []
        offsets: list[int] = []
        length = 0
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            try:
                raw = textpage.get_text_bounded()
            finally:
                textpage.close()
                page.close()
            cleaned = _clean_pdf_page(raw)
            if pages:
                length += 2  # the paragraph break between pages
            offsets.append(length)
            pages.append(cleaned)
            length += len(cleaned)
        text = "\n\n".join(pages)
        metadata_title = " ".join(document.get_metadata_dict().get("Title", "").split())
        headings = _pdf_headings(document, text, offsets)
    except pdfium.PdfiumError as exc:  # a page that does not load
        raise fail("PDF_BROKEN", f"({exc})") from exc
    finally:
        document.close()
    return text, metadata_title or None, headings, tuple(offsets)


# Dot leaders of a table of contents (". . . . ." or "......"), shortened to an ellipsis.
_LEADER = re.compile(r" ?(?:\. ?){5,}")


def _clean_pdf_page(raw: str) -> str:
    # PDFium marks a hyphen that breaks a word at the end of a line as \x02 (and drops the
    # line break): join the word. It ends lines with \r\n.
    text = raw.replace("\x02", "").replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", _strip_controls(text))
    lines = [_LEADER.sub(" … ", " ".join(line.split())) for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _pdf_headings(document: Any, text: str, offsets: list[int]) -> list[Heading]:
    """The outline (bookmarks) as headings, each placed where its title occurs on its page
    (or at the start of the page), never before the previous heading."""
    headings: list[Heading] = []
    previous = 0
    try:
        outline = list(document.get_toc(max_depth=6))
    except Exception:  # a damaged outline is no reason to lose the text
        return []
    for item in outline:
        title = " ".join((item.get_title() or "").split())
        dest = item.get_dest()
        index = dest.get_index() if dest is not None else None
        if not title or index is None or not 0 <= index < len(offsets):
            continue
        start = max(offsets[index], previous)
        end = offsets[index + 1] if index + 1 < len(offsets) else len(text)
        offset = start
        letters = [re.escape(ch) for ch in title if ch.isalnum()]
        if letters:
            # Outline titles and page text differ in spacing and hyphens ("Nonregular" in the
            # outline, "Non-regular" on the page): match the letters and digits only.
            found = re.compile(r"[\W_]*".join(letters), re.IGNORECASE).search(
                text, start, max(end, start)
            )
            if found:
                line_start = text.rfind("\n", 0, found.start()) + 1
                offset = max(line_start, start)
        headings.append(Heading(level=min(item.level + 1, 6), title=title, offset=offset))
        previous = offset
    return headings


# --- plain text and the common steps ---------------------------------------------------------

_CONTROLS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _strip_controls(text: str) -> str:
    return _CONTROLS.sub("", text.replace("\x0c", "\n"))


def _plain_text(text: str) -> str:
    text = _strip_controls(text.replace("\r\n", "\n").replace("\r", "\n"))
    text = unicodedata.normalize("NFC", text)
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _first_line(text: str) -> str | None:
    for line in text.split("\n", 50)[:50]:
        words = line.split()
        if words:
            return " ".join(words)[:MAX_TITLE]
    return None


_WORD = re.compile(r"\w+")


def count_words(text: str) -> int:
    return sum(1 for _ in _WORD.finditer(text))


def parse(data: bytes, filename_hint: str | None = None) -> Extracted:
    """EXTRACTING without the language: what the isolated child runs."""
    content_type, decoded, encoding = _sniff(data, filename_hint)
    page_count: int | None = None
    page_offsets: tuple[int, ...] = ()
    headings: list[Heading] = []
    if content_type == "pdf":
        text, title, headings, page_offsets = _pdf_text(data)
        page_count = len(page_offsets)
    else:
        assert decoded is not None and encoding is not None
        if content_type == "html":
            decoded, encoding = _decode_html(data, decoded, encoding)
            text, title, headings = _html_text(decoded)
        elif content_type == "markdown":
            text, title, headings = _markdown_text(_plain_text(decoded))
        else:
            text, title = _plain_text(decoded), None
    if len(text) > MAX_TEXT_CHARS:
        raise fail("EXTRACTION_TOO_LARGE", f"(more than {MAX_TEXT_CHARS:,} characters of text)")
    words = count_words(text)
    if words == 0:
        raise fail("NO_TEXT")
    return Extracted(
        text=text,
        content_type=content_type,
        title=(title[:MAX_TITLE] if title else None) or _first_line(text),
        headings=tuple(headings),
        word_count=words,
        page_count=page_count,
        page_offsets=page_offsets,
        encoding=encoding,
    )


def load_parser(content_type: ContentType) -> None:
    """Import the libraries that parsing `content_type` needs (the child does this before it
    limits its address space, so that the limit bounds the parsing, not the imports)."""
    if content_type == "pdf":
        import pypdfium2  # noqa: F401
    elif content_type in ("html", "markdown"):
        import selectolax.lexbor  # noqa: F401

        if content_type == "markdown":
            _markdown_parser()


def extract(data: bytes, filename_hint: str | None = None) -> Extracted:
    """EXTRACTING in this process: `parse`, then the language. Raises Invalid (ERROR_CODES)."""
    extracted = parse(data, filename_hint)
    return replace(extracted, language=detect_language(extracted.text))


# --- language --------------------------------------------------------------------------------

LANGUAGE_SAMPLE = 20_000
MIN_LETTERS_FOR_LANGUAGE = 20


@functools.cache
def _language_model() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language (py3langid), from up to 20,000 characters taken
    from its start, middle and end; None when it has fewer than 20 letters or the guess has a
    probability under 0.5. The model loads once per process (about 2 s)."""
    if len(text) > LANGUAGE_SAMPLE:
        third = LANGUAGE_SAMPLE // 3
        middle = len(text) // 2
        sample = "\n".join(
            (text[:third], text[middle - third // 2 : middle + third // 2], text[-third:])
        )
    else:
        sample = text
    if sum(1 for ch in sample if ch.isalpha()) < MIN_LETTERS_FOR_LANGUAGE:
        return None
    language, probability = _language_model().classify(sample)
    return str(language) if probability >= 0.5 else None


# --- isolation -------------------------------------------------------------------------------

PROJECT_ROOT = Path(__file__).resolve().parent.parent


async def extract_isolated(
    data: bytes,
    filename_hint: str | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> Extracted:
    """EXTRACTING with the parser in a child process limited to `memory_mb` of address space
    and killed after `timeout_s` seconds; the language is detected here, off the event loop.

    Raises Invalid with the parser's code, or EXTRACTION_TIMEOUT, EXTRACTION_TOO_LARGE or
    EXTRACTION_FAILED (the child crashed).
    """
    import asyncio

    if not data:
        raise fail("EMPTY_FILE")
    result = await run_child(CHILD_MODULE, data, filename_hint, timeout_s, memory_mb)
    extracted = Extracted.from_json(result)
    language = await asyncio.to_thread(detect_language, extracted.text)
    return replace(extracted, language=language)


async def check_pdf_isolated(data: bytes, *, timeout_s: float, memory_mb: int) -> int:
    """Open a PDF in an isolated child (as `extract_isolated` parses it) and return its page
    count, so that an upload refuses, before storing anything, what its run would fail on at
    once: a PDF that needs a password (PDF_ENCRYPTED) or whose structure PDFium cannot read
    (PDF_BROKEN). Pages are not loaded: a page that does not load still fails at EXTRACTING."""
    result = await run_child(PDF_CHECK_MODULE, data, None, timeout_s, memory_mb)
    return int(result["pages"])


async def run_child(
    module: str, data: bytes, filename_hint: str | None, timeout_s: float, memory_mb: int
) -> dict[str, Any]:
    """Run `python -m module memory_mb cpu_seconds` with a JSON header line and the bytes on
    stdin; return its `ok` object, or raise Invalid for its `error` or for how it ended."""
    import asyncio

    header = json.dumps({"filename_hint": filename_hint}).encode() + b"\n"
    cpu_seconds = max(1, int(timeout_s) + 1)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        str(memory_mb),
        str(cpu_seconds),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env=_child_env(),
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(header + data), timeout_s)
    except TimeoutError:
        _kill(process)
        await process.wait()
        raise fail("EXTRACTION_TIMEOUT", f"(limit {timeout_s:g} s)") from None
    except BaseException:
        _kill(process)
        await process.wait()
        raise
    code = process.returncode
    if code == -signal.SIGXCPU:  # the CPU-time limit, the backstop of the deadline
        raise fail("EXTRACTION_TIMEOUT", f"(limit {timeout_s:g} s)")
    if code == -signal.SIGKILL:  # not ours (we only kill after the deadline): the OOM killer
        raise fail("EXTRACTION_TOO_LARGE")
    try:
        reply = json.loads(stdout) if stdout else None
    except ValueError:
        reply = None
    if isinstance(reply, dict) and code == 0:
        if "ok" in reply:
            ok: dict[str, Any] = reply["ok"]
            return ok
        error = reply.get("error") or {}
        if error.get("code") in ERROR_CODES:
            raise Invalid(str(error.get("message")), code=str(error["code"]), field="file")
    reason = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
    detail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] if stderr else []
    last = f": {detail[0][:200]}" if detail else ""
    raise fail("EXTRACTION_FAILED", f"(the parser stopped with {reason}{last})")


def _child_env() -> dict[str, str]:
    """Only what the interpreter needs: the worker's secrets stay out of the parser's reach."""
    return {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYTHONNOUSERSITE": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
