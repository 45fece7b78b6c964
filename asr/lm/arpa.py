"""N-gram models as ARPA files hold them: `NGramLM`, `load_arpa`, `NGramLM.write_arpa`.

`NGramLM` keeps log10 probabilities and backoff weights; its reference
`NGramLM.log10_prob` is the ARPA backoff rule (Katz 1987 / SRILM's ngram-format):
``P(w | h) = P*(w | h)`` if the model holds ``h w``, else ``bow(h) P(w | h[1:])``.
A space symbol (the character models' word separator) is written ``<space>``.
"""

from __future__ import annotations

import gzip
import math
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from asr.atomic import write_bytes, write_text
from asr.errors import UserError, file_error

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPACE, ARPA_SPACE = " ", "<space>"
LOG10_ZERO = -99.0  # ARPA's "probability 0" (the <s> unigram)
LN10 = math.log(10.0)

# ngrams[k - 1] maps each k-gram (a tuple of words) to (log10 prob, log10 backoff or None).
NGramTable = list[dict[tuple[str, ...], tuple[float, float | None]]]


@dataclass
class NGramLM:
    """A backoff n-gram model as an ARPA file holds it.

    source: the file it was read from ('' when built in memory), for error messages.
    """

    ngrams: NGramTable
    source: str = field(default="", compare=False)

    @property
    def order(self) -> int:
        return len(self.ngrams)

    @property
    def vocabulary(self) -> list[str]:
        """The words of the model (its unigrams), ``<s>`` and ``</s>`` included."""
        return [gram[0] for gram in self.ngrams[0]]

    def log10_prob(self, word: str, context: Sequence[str] = ()) -> float:
        """log10 P(word | context) by the ARPA backoff rule.

        An unknown word reads as ``<unk>``; without ``<unk>`` it gets -99 (ARPA's zero;
        the scorers use their ``oov_log10prob`` penalty instead).
        """
        if (word,) not in self.ngrams[0]:
            word = UNK
        context = tuple(context)[max(len(context) - self.order + 1, 0) :] if self.order > 1 else ()
        backoff = 0.0
        while True:
            entry = self.ngrams[len(context)].get(context + (word,))
            if entry is not None:
                return backoff + entry[0]
            if not context:
                return backoff + LOG10_ZERO
            context_entry = self.ngrams[len(context) - 1].get(context)
            if context_entry is not None and context_entry[1] is not None:
                backoff += context_entry[1]
            context = context[1:]

    def log10_sentence(self, words: Sequence[str]) -> float:
        """log10 P(words </s> | <s>)."""
        history, total = [BOS], 0.0
        for word in [*words, EOS]:
            total += self.log10_prob(word, history)
            history.append(word)
        return total

    def write_arpa(self, path: str | os.PathLike) -> None:
        """Write the model as an ARPA file, atomically (temp file, then rename); gzipped if `path`
        ends with ``.gz``, with no time stamp, so that the same model gives the same bytes (git)."""
        lines = ["\\data\\"]
        lines += [f"ngram {k}={len(grams)}" for k, grams in enumerate(self.ngrams, 1)]
        for k, grams in enumerate(self.ngrams, 1):
            lines += ["", f"\\{k}-grams:"]
            for gram, (log_p, backoff) in grams.items():
                text = f"{_number(log_p)}\t{' '.join(_arpa_word(w) for w in gram)}"
                lines.append(text if backoff is None else f"{text}\t{_number(backoff)}")
        lines += ["", "\\end\\", ""]
        text = "\n".join(lines)
        if os.fspath(path).endswith(".gz"):
            write_bytes(path, gzip.compress(text.encode("utf-8"), mtime=0))
        else:
            write_text(path, text)


def _number(value: float) -> str:
    """ARPA precision: 7 significant digits (parsing and printing again gives the same text)."""
    return f"{value:.7g}"


def _arpa_word(word: str) -> str:
    return ARPA_SPACE if word == SPACE else word


# ---------------------------------------------------------------- reading ARPA


_ARPA_FIX = (
    "An ARPA file has a \\data\\ header with 'ngram N=count' lines, then \\1-grams: ... "
    "sections of 'log10prob w1 .. wN [log10backoff]' lines, then \\end\\ "
    "(as KenLM's lmplz or SRILM's ngram-count write them)"
)


_LONGEST_LINE = 1 << 16  # characters; an n-gram line is a few words and two numbers
_LONGEST_PREAMBLE = 1 << 20  # characters of text before \data\ that other tools may write


def load_arpa(path: str | os.PathLike) -> NGramLM:
    """Read an ARPA file (plain or .gz). ``<space>`` reads as the space symbol.

    Tolerates what other tools write: text before ``\\data\\``, blank lines, tabs,
    missing backoff weights (= 0), ``-inf`` probabilities (read as -99).
    A malformed file raises `UserError` naming the file and line. The file is read
    line by line and given up at the first line that is not ARPA, so a wrong file
    (a corpus, a checkpoint) fails fast; devices and pipes are refused unread.
    """
    _check_regular(path)
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as source:
            lm = _ArpaReader(path, _Lines(source, path)).read()
    except (OSError, EOFError, UnicodeDecodeError) as error:  # EOFError: a truncated .gz
        raise file_error(path, f"cannot read it as an ARPA file ({error})", _ARPA_FIX) from None
    lm.source = os.fspath(path)
    return lm


def _check_regular(path: str | os.PathLike) -> None:
    """Only a regular file has an end: /dev/zero or a pipe would be read without bound."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise file_error(path, "no such ARPA file", "Check the path") from None
    except OSError as error:
        raise file_error(path, f"cannot read it ({error.strerror})", "Check the path and its permissions") from None
    if not stat.S_ISREG(mode):
        raise file_error(path, "not a regular file (a folder, a device or a pipe)",
                         "Give the path of an ARPA file (.arpa, or .arpa.gz)")


class _Lines:
    """The non-blank lines of an open text file, stripped and numbered, read one at a
    time with one line of lookahead; a line longer than ``_LONGEST_LINE`` is an error."""

    def __init__(self, source: IO[str], path: str | os.PathLike):
        self.source, self.path = source, os.fspath(path)
        self.number = 0  # of the last line read, blank lines included
        self.characters = 0
        self.ahead: tuple[int, str] | None = None
        self.ended = False

    def peek(self) -> tuple[int, str] | None:
        """The next non-blank line (number, text), or None at the end of the file."""
        while self.ahead is None and not self.ended:
            line = self.source.readline(_LONGEST_LINE + 1)
            if not line:
                self.ended = True
                break
            self.number += 1
            self.characters += len(line)
            if len(line) > _LONGEST_LINE and not line.endswith("\n"):
                raise file_error(f"{self.path}:{self.number}", f"a line longer than {_LONGEST_LINE} characters",
                                 f"This is not an ARPA file. {_ARPA_FIX}")
            if line.strip():
                self.ahead = (self.number, line.strip())
        return self.ahead

    def take(self) -> tuple[int, str] | None:
        line, self.ahead = self.peek(), None
        return line

    def next_is(self, text: str, prefix: bool = False) -> bool:
        """Whether the next line is `text` (or starts with it)."""
        line = self.peek()
        return line is not None and (line[1].startswith(text) if prefix else line[1] == text)

    def before(self, marker: str) -> Iterator[tuple[int, str]]:
        """The lines up to the next one that starts with `marker`, which is left to read."""
        while (line := self.peek()) is not None and not line[1].startswith(marker):
            self.ahead = None
            yield line

    def here(self) -> int:
        """The number of the line to report: the next non-blank one, or the last one."""
        line = self.peek()
        return self.number if line is None else line[0]


class _ArpaReader:
    """A line-by-line ARPA parser that reports the line of the first problem."""

    def __init__(self, path: str | os.PathLike, lines: _Lines):
        self.path = os.fspath(path)
        self.lines = lines
        self.line_of: dict[tuple[str, ...], int] = {}

    def error(self, line_number: int, problem: str) -> UserError:
        return file_error(f"{self.path}:{line_number}", problem, _ARPA_FIX)

    def read(self) -> NGramLM:
        self.skip_preamble()
        counts = self.read_counts()
        ngrams: NGramTable = []
        for order, (expected, header_line) in enumerate(counts, 1):
            grams = self.read_section(order, len(counts))
            if len(grams) != expected:
                raise self.error(header_line, f"the header says {expected} {order}-grams, the file has {len(grams)}")
            ngrams.append(grams)
        if not self.lines.next_is("\\end\\"):
            raise self.error(self.lines.here(), "expected \\end\\")
        self.check_contexts(ngrams)
        return NGramLM(ngrams)

    def skip_preamble(self) -> None:
        """Up to the \\data\\ line, if it comes within ``_LONGEST_PREAMBLE`` characters."""
        while (line := self.lines.take()) is not None and line[1] != "\\data\\":
            if self.lines.characters > _LONGEST_PREAMBLE:
                raise self.error(line[0], f"no \\data\\ header in the first {_LONGEST_PREAMBLE} characters")
        if line is None:
            raise self.error(self.lines.number, "no \\data\\ header")

    def read_counts(self) -> list[tuple[int, int]]:
        """The header's 'ngram N=count' lines: (count, line number) per order."""
        counts = []
        while self.lines.next_is("ngram ", prefix=True):
            line_number, text = self.lines.take()
            key, _, value = text[len("ngram ") :].partition("=")
            try:
                order, count = int(key), int(value)
            except ValueError:
                raise self.error(line_number, f"bad count line {text!r}") from None
            if order != len(counts) + 1 or count < 0:
                raise self.error(line_number, f"expected 'ngram {len(counts) + 1}=<count>', got {text!r}")
            counts.append((count, line_number))
        if not counts:
            raise self.error(self.lines.here(), "no 'ngram N=count' lines after \\data\\")
        return counts

    def read_section(self, order: int, max_order: int) -> dict[tuple[str, ...], tuple[float, float | None]]:
        if not self.lines.next_is(f"\\{order}-grams:"):
            raise self.error(self.lines.here(), f"expected the \\{order}-grams: section")
        self.lines.take()
        grams: dict[tuple[str, ...], tuple[float, float | None]] = {}
        for line_number, text in self.lines.before("\\"):
            gram, entry = self.read_ngram(line_number, text, order, max_order)
            grams[gram] = entry
            self.line_of[gram] = line_number
        return grams

    def read_ngram(
        self, line_number: int, line: str, order: int, max_order: int
    ) -> tuple[tuple[str, ...], tuple[float, float | None]]:
        """One 'log10prob w1 .. wN [log10backoff]' line."""
        fields = line.split()
        if len(fields) not in (order + 1, order + 2) or (len(fields) == order + 2 and order == max_order):
            raise self.error(line_number, f"a {order}-gram line needs a log10 probability, {order} words and "
                             f"{'no' if order == max_order else 'an optional'} backoff weight; got {line!r}")
        log_p = self.number(line_number, fields[0])
        if log_p > 0:
            raise self.error(line_number, f"{fields[0]!r} is not a log10 probability (<= 0)")
        backoff = self.number(line_number, fields[-1]) if len(fields) == order + 2 else None
        return tuple(SPACE if w == ARPA_SPACE else w for w in fields[1 : order + 1]), (log_p, backoff)

    def number(self, line_number: int, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise self.error(line_number, f"{text!r} is not a number") from None
        if math.isnan(value) or value == math.inf:
            raise self.error(line_number, f"{text!r} is not a log10 value")
        return max(value, LOG10_ZERO)

    def check_contexts(self, ngrams: NGramTable) -> None:
        """An n-gram's context and its word must be in the model (the backoff rule needs them)."""
        for order in range(2, len(ngrams) + 1):
            for gram in ngrams[order - 1]:
                for needed in (gram[:-1], gram[-1:]):
                    if needed not in ngrams[len(needed) - 1]:
                        raise self.error(self.line_of[gram], f"the {order}-gram {' '.join(gram)!r} needs "
                                         f"the {len(needed)}-gram {' '.join(needed)!r}, which the file lacks")
