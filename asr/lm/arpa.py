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
from collections.abc import Sequence
from dataclasses import dataclass

from asr.atomic import write_text
from asr.errors import UserError, file_error

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPACE, ARPA_SPACE = " ", "<space>"
LOG10_ZERO = -99.0  # ARPA's "probability 0" (the <s> unigram)
LN10 = math.log(10.0)

# ngrams[k - 1] maps each k-gram (a tuple of words) to (log10 prob, log10 backoff or None).
NGramTable = list[dict[tuple[str, ...], tuple[float, float | None]]]


@dataclass
class NGramLM:
    """A backoff n-gram model as an ARPA file holds it."""

    ngrams: NGramTable

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
        """Write the model as an ARPA file, atomically (temp file, then rename)."""
        lines = ["\\data\\"]
        lines += [f"ngram {k}={len(grams)}" for k, grams in enumerate(self.ngrams, 1)]
        for k, grams in enumerate(self.ngrams, 1):
            lines += ["", f"\\{k}-grams:"]
            for gram, (log_p, backoff) in grams.items():
                text = f"{_number(log_p)}\t{' '.join(_arpa_word(w) for w in gram)}"
                lines.append(text if backoff is None else f"{text}\t{_number(backoff)}")
        lines += ["", "\\end\\", ""]
        write_text(path, "\n".join(lines))


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


def load_arpa(path: str | os.PathLike) -> NGramLM:
    """Read an ARPA file (plain or .gz). ``<space>`` reads as the space symbol.

    Tolerates what other tools write: text before ``\\data\\``, blank lines, tabs,
    missing backoff weights (= 0), ``-inf`` probabilities (read as -99).
    A malformed file raises `UserError` naming the file and line.
    """
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as source:
            lines = source.read().splitlines()
    except FileNotFoundError:
        raise file_error(path, "no such ARPA file", "Check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise file_error(path, f"cannot read it as an ARPA file ({error})", _ARPA_FIX) from None
    return _ArpaReader(path).read(lines)


class _ArpaReader:
    """A line-by-line ARPA parser that reports the line of the first problem."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.line_of: dict[tuple[str, ...], int] = {}

    def error(self, line_number: int, problem: str) -> UserError:
        return file_error(f"{self.path}:{line_number}", problem, _ARPA_FIX)

    def read(self, lines: list[str]) -> NGramLM:
        numbered = [(n, line.strip()) for n, line in enumerate(lines, 1)]
        numbered = [(n, line) for n, line in numbered if line]
        start = next((i for i, (_, line) in enumerate(numbered) if line == "\\data\\"), None)
        if start is None:
            raise self.error(len(lines), "no \\data\\ header")
        counts, position = self.read_counts(numbered, start + 1)
        ngrams: NGramTable = []
        for order, expected in enumerate(counts, 1):
            grams, position = self.read_section(numbered, position, order, len(counts))
            if len(grams) != expected:
                header_line = numbered[start + order][0]
                raise self.error(header_line, f"the header says {expected} {order}-grams, the file has {len(grams)}")
            ngrams.append(grams)
        if position >= len(numbered) or numbered[position][1] != "\\end\\":
            line_number = numbered[position][0] if position < len(numbered) else len(lines)
            raise self.error(line_number, "expected \\end\\")
        self.check_contexts(ngrams)
        return NGramLM(ngrams)

    def read_counts(self, numbered: list[tuple[int, str]], position: int) -> tuple[list[int], int]:
        counts = []
        while position < len(numbered) and numbered[position][1].startswith("ngram "):
            line_number, line = numbered[position]
            key, _, value = line[len("ngram ") :].partition("=")
            try:
                order, count = int(key), int(value)
            except ValueError:
                raise self.error(line_number, f"bad count line {line!r}") from None
            if order != len(counts) + 1 or count < 0:
                raise self.error(line_number, f"expected 'ngram {len(counts) + 1}=<count>', got {line!r}")
            counts.append(count)
            position += 1
        if not counts:
            line_number = numbered[position][0] if position < len(numbered) else numbered[-1][0]
            raise self.error(line_number, "no 'ngram N=count' lines after \\data\\")
        return counts, position

    def read_section(
        self, numbered: list[tuple[int, str]], position: int, order: int, max_order: int
    ) -> tuple[dict, int]:
        if position >= len(numbered) or numbered[position][1] != f"\\{order}-grams:":
            line_number = numbered[min(position, len(numbered) - 1)][0]
            raise self.error(line_number, f"expected the \\{order}-grams: section")
        grams: dict[tuple[str, ...], tuple[float, float | None]] = {}
        position += 1
        while position < len(numbered) and not numbered[position][1].startswith("\\"):
            line_number, line = numbered[position]
            fields = line.split()
            if len(fields) not in (order + 1, order + 2) or (len(fields) == order + 2 and order == max_order):
                raise self.error(line_number, f"a {order}-gram line needs a log10 probability, {order} words and "
                                 f"{'no' if order == max_order else 'an optional'} backoff weight; got {line!r}")
            log_p = self.number(line_number, fields[0])
            if log_p > 0:
                raise self.error(line_number, f"{fields[0]!r} is not a log10 probability (<= 0)")
            backoff = self.number(line_number, fields[-1]) if len(fields) == order + 2 else None
            gram = tuple(SPACE if w == ARPA_SPACE else w for w in fields[1 : order + 1])
            grams[gram] = (log_p, backoff)
            self.line_of[gram] = line_number
            position += 1
        return grams, position

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
