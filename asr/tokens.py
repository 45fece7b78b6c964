"""Token sets: the labels a model emits, with blank at index 0.

Two kinds:
- ``phones``: TIMIT's 61 phones (Garofolo et al. 1993). Models are trained and
  decoded on all 61; scores fold them to 39 classes (Lee & Hon 1989, the
  folding used by Graves et al. 2013 and Kaldi's timit recipe).
- ``chars``: characters of word transcripts, space included, for speech with
  word transcripts (LibriSpeech, manifests) and for handwriting.

A `TokenSet` is plain data (a tuple of symbols and a kind), so it is saved in
every checkpoint as a dict and rebuilt from it.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from asr.errors import UserError

BLANK = "<blank>"
SPACE = " "

# TIMIT's 61 phones (the TIMIT phonetic codes, timitdic.doc), grouped as in the corpus docs.
TIMIT_PHONES: tuple[str, ...] = (
    # stops and their closures
    "b", "d", "g", "p", "t", "k", "dx", "q",
    "bcl", "dcl", "gcl", "pcl", "tcl", "kcl",
    # affricates
    "jh", "ch",
    # fricatives
    "s", "sh", "z", "zh", "f", "th", "v", "dh",
    # nasals
    "m", "n", "ng", "em", "en", "eng", "nx",
    # semivowels and glides
    "l", "r", "w", "y", "hh", "hv", "el",
    # vowels
    "iy", "ih", "eh", "ey", "ae", "aa", "aw", "ay", "ah", "ao", "oy", "ow",
    "uh", "uw", "ux", "er", "ax", "ix", "axr", "ax-h",
    # pauses and silence
    "pau", "epi", "h#",
)

# Lee & Hon (1989): the 61 -> 39 folding for scoring. Phones not listed map to
# themselves; `None` means the phone is deleted before scoring (the glottal stop q).
FOLD_61_TO_39: dict[str, str | None] = {
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih",
    "el": "l", "em": "m", "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    "pcl": "sil", "tcl": "sil", "kcl": "sil", "bcl": "sil", "dcl": "sil", "gcl": "sil",
    "h#": "sil", "pau": "sil", "epi": "sil",
    "q": None,
}

TIMIT_PHONES_39: tuple[str, ...] = tuple(
    dict.fromkeys(p for p in (FOLD_61_TO_39.get(q, q) for q in TIMIT_PHONES) if p is not None)
)

# Word transcripts for speech: lower-case letters and the apostrophe (LibriSpeech's set).
SPEECH_CHARACTERS: tuple[str, ...] = (SPACE, "'", *string.ascii_lowercase)


def fold_phones(phones: Iterable[str]) -> list[str]:
    """Fold TIMIT 61-phone labels to the 39 scoring classes (q is deleted)."""
    folded = (FOLD_61_TO_39.get(p, p) for p in phones)
    return [p for p in folded if p is not None]


def _base_letters(text: str) -> str:
    """Lower case without accents: what `normalize_speech_text` keeps a letter as."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def normalize_speech_text(text: str) -> str:
    """Lower-case, strip accents and punctuation but apostrophes, squeeze spaces.

    The word transcripts of TIMIT, LibriSpeech and users' manifests differ in
    case and punctuation; a character model for speech sees one spelling.
    """
    text = re.sub(r"[^a-z' ]+", " ", _base_letters(text))
    return " ".join(text.split())


@dataclass(frozen=True)
class TokenSet:
    """Symbols with blank at index 0, and how a transcript becomes labels.

    kind ``phones``: labels are whitespace-separated phone names.
    kind ``chars``: labels are the characters of the text (space is a token).
    ``normalize`` (chars only): ``speech`` lower-cases and strips punctuation
    (`normalize_speech_text`); ``none`` keeps the text as written (handwriting).
    """

    symbols: tuple[str, ...]
    kind: str
    normalize: str = "none"

    def __post_init__(self) -> None:
        if self.kind not in ("phones", "chars"):
            raise ValueError(f"unknown token set kind {self.kind!r}")
        if not self.symbols or self.symbols[0] != BLANK:
            raise ValueError("a token set's first symbol must be the blank")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("a token set's symbols must be distinct")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.symbols)})

    @property
    def blank(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.symbols)

    def labels(self, transcript: str) -> list[str]:
        """The label sequence a transcript stands for (phones: split on spaces)."""
        if self.kind == "phones":
            return transcript.split()
        if self.normalize == "speech":
            transcript = normalize_speech_text(transcript)
        return list(transcript)

    def encode(self, labels: Sequence[str], source: str = "transcript") -> list[int]:
        """Label names -> ids; an unknown label is a `UserError` naming `source`."""
        try:
            return [self._index[label] for label in labels]
        except KeyError as missing:
            raise UserError(
                f"{source}: label {missing.args[0]!r} is not in the model's token set "
                f"({self.describe()}). Check the transcript, or build the token set from this data"
            ) from None

    def unwritable(self, transcript: str) -> list[str]:
        """The labels of `transcript` this set cannot write, each once, in order of first use.

        For speech characters these are the letters and digits that the
        normalisation would silently drop ('2', 'ß', Cyrillic): a transcript
        that loses them no longer says what was spoken. Punctuation is meant
        to go and is not counted; accents come off the letters they sit on.
        """
        if self.normalize == "speech":
            labels = [c for c in _base_letters(transcript) if c.isalnum()]
        else:
            labels = self.labels(transcript)
        return list(dict.fromkeys(label for label in labels if label not in self._index))

    def encode_text(self, transcript: str, source: str = "transcript") -> list[int]:
        return self.encode(self.labels(transcript), source)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> label names (the blank, if present, is dropped)."""
        return [self.symbols[i] for i in ids if i != 0]

    def to_text(self, ids: Iterable[int]) -> str:
        """Ids -> the transcript as people read it: phones space-separated, characters joined."""
        labels = self.decode(ids)
        if self.kind == "phones":
            return " ".join(labels)
        return " ".join("".join(labels).split())

    def describe(self) -> str:
        return f"{len(self) - 1} {self.kind} + blank"

    def to_dict(self) -> dict:
        return {"symbols": list(self.symbols), "kind": self.kind, "normalize": self.normalize}

    @classmethod
    def from_dict(cls, data: dict) -> "TokenSet":
        return cls(tuple(data["symbols"]), data["kind"], data.get("normalize", "none"))


def timit_phones() -> TokenSet:
    """TIMIT's 61 phones + blank (62 outputs, as in Graves et al. 2013)."""
    return TokenSet((BLANK, *TIMIT_PHONES), "phones")


def speech_characters() -> TokenSet:
    """Space, apostrophe and a-z + blank, for word transcripts of speech."""
    return TokenSet((BLANK, *SPEECH_CHARACTERS), "chars", normalize="speech")


def characters_from_texts(texts: Iterable[str]) -> TokenSet:
    """Every character seen in `texts` (space first), as written: for handwriting."""
    seen = set()
    for text in texts:
        seen.update(text)
    seen.discard(SPACE)
    return TokenSet((BLANK, SPACE, *sorted(seen)), "chars")


def token_set(name: str, texts: Iterable[str] = ()) -> TokenSet:
    """The token set a config names: ``timit61``, ``speech-chars`` or ``chars`` (from `texts`)."""
    if name == "timit61":
        return timit_phones()
    if name == "speech-chars":
        return speech_characters()
    if name == "chars":
        return characters_from_texts(texts)
    raise UserError(f"unknown token set {name!r}: use timit61, speech-chars or chars")
