"""Sentences for the synthesized corpus, read from installed Debian packages.

Two sources, read at generation time so that nothing derived is shipped in git:

- ``wordnet``: the example phrases of WordNet 3.0 (package ``wordnet-base``, the
  quoted text in ``/usr/share/wordnet/data.*``). WordNet licence: permissive, the
  notice must travel with copies; `wordnet_licence` returns it for the corpus' DOC folder.
- ``bible``: the King James Bible (package ``bible-kjv``), split into clauses
  (public domain).
- ``gcide``: the quotations of the GNU Collaborative International Dictionary
  of English (package ``dict-gcide``; Webster's 1913 dictionary, public domain,
  with GCIDE's additions under the GPL, version 2 or later): lines of English
  prose and verse from three centuries of authors, each cited as ``--Author.``
- ``devil``: Ambrose Bierce's The Devil's Dictionary, 1911 (package
  ``dict-devil``; public domain): definitions and essays in plain prose.

Never from the ``fortunes*`` packages: their text is kept for evaluation.

Every sentence belongs to TRAIN or TEST by a hash of its words (`sentence_split`),
the same in every corpus whatever the seed: `training_text` is the text an LM
may be built from, and it never holds a sentence a TEST speaker reads.

`clean_sentence` keeps only what a synthesizer says without surprises: 4-20
words of letters (one inner apostrophe allowed: "don't", "John's"), basic
punctuation, no digits, abbreviations, acronyms, quotes or spelled-out letters.
Hyphens become spaces, so the TXT file, the WRD words and
`asr.tokens.normalize_speech_text` all agree on what a word is.
"""

from __future__ import annotations

import functools
import gzip
import re
import shutil
import subprocess
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from asr.errors import UserError
from asr.tokens import normalize_speech_text

WORDNET_DIR = Path("/usr/share/wordnet")
GCIDE_FILE = Path("/usr/share/dictd/gcide.dict.dz")
DEVIL_FILE = Path("/usr/share/dictd/devil.dict.dz")
# The share of sentences that are TEST sentences, chosen by a hash of their words.
TEST_SENTENCE_PERCENT = 20
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


def sentence_split(text: str) -> str:
    """``TRAIN`` or ``TEST``: a sentence's split, fixed by a hash of its `sentence_key`."""
    percent = zlib.crc32(sentence_key(text).encode()) % 100
    return "TEST" if percent < TEST_SENTENCE_PERCENT else "TRAIN"


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


def _dictd_text(path: Path, package: str) -> str:
    if not path.is_file():
        raise UserError(
            f"{path}: the dictionary text is missing. Install it (apt-get install {package}) "
            "or leave it out of --text"
        )
    # dictd's .dz is gzip with random-access chunks: gzip reads it whole
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read()


_SENTENCE_END = re.compile(r"(?<=[.;:?!])\s+")
_INLINE_QUOTE = re.compile(r'"([^"]{12,})"\s*--')
_CITATION = re.compile(r"\s--\s?[A-Z][^\n]*$", re.S)


def gcide_sentences(path: Path = GCIDE_FILE) -> list[str]:
    """The quotations of GCIDE (indented paragraphs cited ``--Author.``), split into clauses, raw."""
    clauses = []
    for paragraph in re.split(r"\n\s*\n", _dictd_text(path, "dict-gcide")):
        lines = [line for line in paragraph.splitlines() if not line.strip().startswith("[")]
        if lines and all(line.startswith("         ") for line in lines):
            # a block quotation: indented by 9 spaces (definitions by 3), the citation last
            quote = " ".join(line.strip() for line in lines)
            cited = _CITATION.search(quote)
            if cited:
                clauses += _clauses(quote[: cited.start()])
        else:  # quotations inside a definition: "Abundant in goodness and truth." --Exod.
            joined = " ".join(line.strip() for line in lines)
            clauses += [c for q in _INLINE_QUOTE.findall(joined) for c in _clauses(q)]
    return clauses


def devil_sentences(path: Path = DEVIL_FILE) -> list[str]:
    """The prose of The Devil's Dictionary (not its verse), split into clauses, raw."""
    clauses = []
    for paragraph in re.split(r"\n\s*\n", _dictd_text(path, "dict-devil")):
        lines = paragraph.splitlines()
        if not lines or lines[0].startswith(" "):
            continue  # verse and citations are indented
        prose = " ".join(line.strip() for line in lines)
        prose = re.sub(r"^[A-Z][A-Z' -]+, [a-z. ]+\s+", "", prose)  # "ABSOLUTE, adj.  "
        clauses += _clauses(prose)
    return clauses


GCIDE_NOTICE = """Sentences of this corpus are quotations from GCIDE, the GNU Collaborative
International Dictionary of English (Debian package dict-gcide), which is based on
Webster's Revised Unabridged Dictionary (1913, public domain) with additions.
GCIDE is free software under the GNU General Public License, version 2 or later
(/usr/share/common-licenses/GPL-2); see /usr/share/doc/dict-gcide/copyright.
"""


def _clauses(prose: str) -> list[str]:
    return [c[:-1] + "." if c.endswith((";", ":")) else c for c in _SENTENCE_END.split(prose.strip())]


SOURCES: dict[str, Callable[[], list[str]]] = {
    "wordnet": wordnet_sentences, "bible": bible_sentences, "gcide": gcide_sentences, "devil": devil_sentences,
}
DEFAULT_SOURCES = ("wordnet", "bible", "gcide", "devil")


def training_text(sources: Sequence[str]) -> list[str]:
    """The TRAIN sentences of `sources` (never a TEST one): the text an LM may be built from."""
    return [t for t in load_sentences(sources) if sentence_split(t) == "TRAIN"]


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
