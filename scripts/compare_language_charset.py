"""Compare language detectors and charset detectors on real translated text (ADR 0030).

Not part of the app or the tests. Run with the candidates added for the one run:

    uv run --frozen --with lingua-language-detector==2.1.1 --with langdetect==1.0.9 \
        --with chardet==7.7.0 python scripts/compare_language_charset.py

Corpus: the translations of apt shipped by Debian (/usr/share/locale/<lang>/LC_MESSAGES/apt.mo,
read with the standard library's gettext parser), and paragraphs of the Python documentation for
English. Samples are made by joining consecutive messages until a sample has at least `size`
characters, with printf placeholders removed.
"""

from __future__ import annotations

import gettext
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

LOCALES = {
    "de": "cp1252",
    "fr": "cp1252",
    "es": "cp1252",
    "it": "cp1252",
    "pt_BR": "cp1252",
    "nl": "cp1252",
    "sv": "cp1252",
    "pl": "cp1250",
    "cs": "iso-8859-2",
    "ru": "koi8-r",
    "uk": "cp1251",
    "ja": "shift_jis",
    "zh_CN": "gb18030",
}


def samples(lang: str, size: int, count: int) -> list[str]:
    if lang == "en":
        from html.parser import HTMLParser

        class P(HTMLParser):
            def __init__(self) -> None:
                super().__init__()
                self.paras: list[str] = []
                self.inp = False

            def handle_starttag(self, tag: str, attrs: object) -> None:
                if tag == "p":
                    self.inp = True
                    self.paras.append("")

            def handle_endtag(self, tag: str) -> None:
                if tag == "p":
                    self.inp = False

            def handle_data(self, data: str) -> None:
                if self.inp:
                    self.paras[-1] += data

        parser = P()
        root = Path("/usr/share/doc/python3.11-doc/html/tutorial")
        for page in sorted(root.glob("*.html")):
            parser.feed(page.read_text(encoding="utf-8"))
        messages = [" ".join(p.split()) for p in parser.paras if len(p) > 40]
    else:
        mo = Path(f"/usr/share/locale/{lang}/LC_MESSAGES/apt.mo")
        with mo.open("rb") as fp:
            catalog = gettext.GNUTranslations(fp)
        raw = catalog._catalog  # type: ignore[attr-defined]
        messages = []
        for key in sorted(raw, key=str):
            value = raw[key]
            if isinstance(value, str) and value and key:
                messages.append(" ".join(re.sub(r"%[-0-9.]*[a-zA-Z]", "", value).split()))
    out: list[str] = []
    current = ""
    for message in messages:
        current = f"{current} {message}".strip()
        if len(current) >= size:
            out.append(current)
            current = ""
            if len(out) == count:
                break
    return out


def iso(lang: str) -> str:
    return lang.split("_")[0]


def detectors() -> dict[str, Callable[[str], str | None]]:
    import py3langid

    out: dict[str, Callable[[str], str | None]] = {
        "py3langid": lambda t: str(py3langid.classify(t)[0]),
    }
    try:
        from lingua import LanguageDetectorBuilder

        lingua = LanguageDetectorBuilder.from_all_languages().build()

        def run_lingua(t: str) -> str | None:
            found = lingua.detect_language_of(t)
            return found.iso_code_639_1.name.lower() if found else None

        out["lingua (all languages, high accuracy)"] = run_lingua
        lingua_low = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()

        def run_lingua_low(t: str) -> str | None:
            found = lingua_low.detect_language_of(t)
            return found.iso_code_639_1.name.lower() if found else None

        out["lingua (all languages, low accuracy)"] = run_lingua_low
    except ImportError:
        pass
    try:
        import langdetect

        langdetect.DetectorFactory.seed = 0
        out["langdetect (seed 0)"] = lambda t: str(langdetect.detect(t)).split("-")[0]
    except ImportError:
        pass
    return out


def compare_language() -> None:
    langs = ["en", *LOCALES]
    print("| detector | " + " | ".join(f"{s} chars" for s in (80, 400)) + " | ms per call (400) |")
    for name, detect in detectors().items():
        cells = []
        per_call = []
        for size in (80, 400):
            right = total = 0
            for lang in langs:
                for text in samples(lang, size, 20):
                    started = time.perf_counter()
                    got = detect(text)
                    per_call.append(time.perf_counter() - started) if size == 400 else None
                    total += 1
                    right += got == iso(lang)
            cells.append(f"{right}/{total}")
        print(f"| {name} | " + " | ".join(cells) + f" | {statistics.median(per_call) * 1000:.2f} |")


def compare_charset() -> None:
    import charset_normalizer

    def cn(data: bytes) -> str | None:
        best = charset_normalizer.from_bytes(data).best()
        return str(best) if best is not None else None

    candidates: dict[str, Callable[[bytes], str | None]] = {"charset-normalizer": cn}
    try:
        import chardet

        def cd(data: bytes) -> str | None:
            enc = chardet.detect(data)["encoding"]
            if enc is None:
                return None
            try:
                return data.decode(enc)
            except (UnicodeDecodeError, LookupError):
                return None

        candidates["chardet"] = cd
    except ImportError:
        pass
    print(
        "| charset detector | exact decodes (of 13 languages x 5 samples x 2 sizes) | ms per call |"
    )
    for name, detect in candidates.items():
        right = total = 0
        times = []
        misses = []
        for lang, encoding in LOCALES.items():
            for size in (200, 2000):
                for text in samples(lang, size, 5):
                    data = text.encode(encoding, errors="ignore")
                    original = data.decode(encoding)
                    started = time.perf_counter()
                    got = detect(data)
                    times.append(time.perf_counter() - started)
                    total += 1
                    if got == original:
                        right += 1
                    else:
                        misses.append(f"{lang}/{encoding}/{size}")
        print(f"| {name} | {right}/{total} | {statistics.median(times) * 1000:.1f} |")
        print(f"   {name} missed: {', '.join(sorted(set(misses)))}")


if __name__ == "__main__":
    compare_language()
    compare_charset()
