"""Sentences for the handwriting corpus, and the split each one belongs to.

Sources, read at generation time so that nothing derived is shipped in git:
WordNet 3.0 example phrases (Debian wordnet-base; WordNet licence, see
/usr/share/doc/wordnet-base/copyright) and King James Bible verses (bible-kjv;
public domain), restricted to `CHARACTERS`. Unlike the speech corpus
(`data.synth.text`), digits, quotes and abbreviations stay: a hand writes them
as easily as letters.

A sentence's split depends on a hash of its text alone, so the sentences of
dev and test never appear in training, whatever the seed.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
import subprocess

from asr.errors import UserError
from data.synth.text import BIBLE_RANGE, wordnet_sentences

CHARACTERS = frozenset(string.ascii_letters + string.digits + " .,;:'\"!?-")
ROLES = ("train", "dev", "test")  # the splits; writers (hands) and sentences each belong to one


def clean(text: str) -> str | None:
    """`text` with straight quotes and single spaces, or None if it has other characters."""
    text = " ".join(text.translate(str.maketrans("\u2018\u2019\u201c\u201d`", "''\"\"'")).split())
    return text if text and set(text) <= CHARACTERS else None


def wordnet_phrases() -> list[str]:
    """The quoted example phrases of WordNet's glosses, or [] without wordnet-base."""
    try:
        return wordnet_sentences()
    except UserError:
        return []  # `load_sentences` names the package with this command's options


def bible_verses() -> list[str]:
    """King James Bible verses from the `bible` program (bible-kjv), or [] without it."""
    try:
        result = subprocess.run(
            ["bible", "-l", "100000", BIBLE_RANGE], capture_output=True, text=True, check=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [m.group(1) for m in re.finditer(r"^\s*\d+ (.+)$", result.stdout, re.MULTILINE)]


SOURCES = {"wordnet": (wordnet_phrases, "wordnet-base"), "bible": (bible_verses, "bible-kjv")}


@functools.lru_cache(maxsize=4)
def load_sentences(sources: tuple[str, ...]) -> list[str]:
    """Clean, distinct sentences from the named sources, sorted (so the order is fixed)."""
    sentences = set()
    for name in sources:
        reader, package = SOURCES[name]
        found = [s for s in map(clean, reader()) if s and len(s.split()) >= 2]
        if not found:
            raise UserError(f"no sentences from {name}: install it with apt-get install {package}")
        sentences.update(found)
    return sorted(sentences)


def sentence_split(sentence: str, dev_fraction: float, test_fraction: float) -> str:
    """The split a sentence belongs to, by a hash of its text (the same for every seed)."""
    position = int(hashlib.sha1(sentence.lower().encode()).hexdigest()[:8], 16) / 16**8
    if position < test_fraction:
        return "test"
    return "dev" if position < test_fraction + dev_fraction else "train"


@functools.lru_cache(maxsize=4)
def sentence_pools(sources: tuple[str, ...], dev_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """The sentences of each split (train, dev, test), in a fixed order."""
    pools: dict[str, list[str]] = {role: [] for role in ROLES}
    for sentence in load_sentences(sources):
        pools[sentence_split(sentence, dev_fraction, test_fraction)].append(sentence)
    return pools
