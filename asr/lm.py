"""N-gram language models for shallow fusion with the CTC beam search.

- `train_ngram`: a token-level n-gram (phone bigram, character 5-gram, ...) with
  interpolated Kneser-Ney smoothing (Kneser & Ney 1995; Chen & Goodman 1999,
  sec. 3.5, one discount per order ``D = n1 / (n1 + 2 n2)``). Lower orders use
  continuation counts, except n-grams starting with ``<s>``, which keep their
  counts (as KenLM does); the unigrams are interpolated with the uniform
  distribution, so every word of the vocabulary has a probability.
  Interpolated KN is a backoff model (Chen & Goodman 1999, eq. 12): a seen n-gram
  stores its interpolated probability, a context stores the interpolation weight
  ``D * N1+(h .) / c(h)`` as its backoff weight, so the ARPA file is exact.
- `NGramLM`: the model as ARPA holds it (log10 probabilities and backoff
  weights), with `load_arpa` / `NGramLM.write_arpa` and a reference
  `NGramLM.log10_prob` (the ARPA backoff rule, Katz 1987 / SRILM's ngram-format).
  A space symbol (the character models' word separator) is written ``<space>``.
- Scorers the beam search uses (`asr.decoding.LMScorer`): `NGramTokenScorer` scores
  every token; `NGramWordScorer` puts a word-level model over a character model and
  scores each word when the space token (or the end) closes it.
- `tune_fusion`: grid search of the LM weight and insertion bonus on held-out data.

A scorer compiles the model into tensors: every n-gram gets an id, a state is the id
of the longest suffix of the history that the model holds (its "context"), and a
lookup of word w after state s is a binary search for the key ``s * |V| + w``
among the n-grams' keys, backing off along the suffix ids (at most ``order``
searches, all candidates at once). The search reads scores from rows (every word
after one state), computed once per state met and cached; when states x words is
small (phone bigrams, character trigrams) all rows are computed up front.

Training is plain Python counting: fine for transcripts (TIMIT, a few MB of text);
for large text corpora train with KenLM (``lmplz``) and `load_arpa` its output.
"""

from __future__ import annotations

import gzip
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

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


# ---------------------------------------------------------------- training


def train_ngram(
    sequences: Iterable[Sequence[str]],
    order: int,
    vocabulary: Iterable[str] = (),
    unk: bool = True,
) -> NGramLM:
    """An interpolated Kneser-Ney n-gram model of symbol sequences.

    sequences: training transcripts as symbol lists (phones; or characters, with " "
    between words; or words). vocabulary: symbols that get a probability even if
    unseen (e.g. a token set's symbols, blank excluded). unk: add ``<unk>`` too.
    """
    if order < 1:
        raise UserError(f"an n-gram order must be at least 1, got {order}")
    counts = _count(sequences, order)
    if not counts[0]:
        raise UserError("no training transcripts for the language model: give it some")
    words = {gram[0] for gram in counts[0]} | set(vocabulary) | {EOS} | ({UNK} if unk else set())
    words.discard(BOS)
    _check_symbols(words)
    adjusted = _adjusted_counts(counts)
    uniform = 1.0 / len(words)

    ngrams: NGramTable = []
    lower: Callable[[tuple[str, ...]], float] = lambda gram: uniform
    for k in range(1, order + 1):
        probs, gammas = _kneser_ney_level(adjusted[k - 1], lower)
        if k == 1:  # every word of the vocabulary gets its share of the uniform distribution
            probs.update({(w,): gammas[()] * uniform for w in words if (w,) not in probs})
        else:  # a context's backoff weight is its interpolation weight
            for context, gamma in gammas.items():  # (<s>,) is a context only: probability 0
                log_p = ngrams[k - 2].get(context, (LOG10_ZERO, None))[0]
                ngrams[k - 2][context] = (log_p, math.log10(gamma))
        ngrams.append({gram: (math.log10(p), None) for gram, p in probs.items()})
        lower = lambda gram, probs=probs: probs[gram[1:]]
    ngrams[0].setdefault((BOS,), (LOG10_ZERO, None))
    for level in ngrams[:-1]:  # lower orders always carry a backoff weight (KenLM does too)
        for gram, (log_p, backoff) in level.items():
            level[gram] = (log_p, 0.0 if backoff is None else backoff)
    return NGramLM([dict(sorted(level.items())) for level in ngrams])


def _count(sequences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts of the k-grams (k = 1..order) of ``<s> sequence </s>``."""
    counts = [Counter() for _ in range(order)]
    for sequence in tqdm(sequences, desc=f"counting {order}-grams", unit=" sentences", leave=False, disable=None):
        padded = (BOS, *sequence, EOS)
        for k in range(1, order + 1):
            counts[k - 1].update(padded[i : i + k] for i in range(len(padded) - k + 1))
    return counts


def _check_symbols(words: set[str]) -> None:
    for word in words:
        if not word or (word != SPACE and any(c.isspace() for c in word)) or word == ARPA_SPACE:
            raise UserError(f"the symbol {word!r} cannot be an n-gram word (empty, white space inside, "
                            f"or {ARPA_SPACE}): check the transcripts")


def _adjusted_counts(counts: list[Counter]) -> list[dict[tuple[str, ...], int]]:
    """Kneser-Ney counts: the highest order and n-grams starting with ``<s>`` keep
    their counts; the others count their distinct left neighbours, N1+(. g)."""
    adjusted = [dict(level) for level in counts]
    for k in range(1, len(counts)):
        left_neighbours = Counter(gram[1:] for gram in counts[k])
        adjusted[k - 1] = {
            gram: count if gram[0] == BOS else left_neighbours[gram]
            for gram, count in counts[k - 1].items()
        }
    adjusted[0].pop((BOS,), None)  # <s> is a context, never predicted
    return adjusted


def _kneser_ney_level(
    adjusted: dict[tuple[str, ...], int], lower: Callable[[tuple[str, ...]], float]
) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    """One order of interpolated KN: P(w | h) for the seen n-grams h w, and gamma(h).

    P(w | h) = (a(h w) - D) / a(h .) + gamma(h) P_lower(w | h[1:]),
    gamma(h) = D * N1+(h .) / a(h .)   (Chen & Goodman 1999, eq. 12/13).
    """
    discount = _discount(adjusted.values())
    totals: dict[tuple[str, ...], float] = defaultdict(float)
    distinct: Counter = Counter()
    for gram, count in adjusted.items():
        totals[gram[:-1]] += count
        distinct[gram[:-1]] += 1
    gammas = {context: discount * distinct[context] / total for context, total in totals.items()}
    probs = {
        gram: (count - discount) / totals[gram[:-1]] + gammas[gram[:-1]] * lower(gram)
        for gram, count in adjusted.items()
    }
    return probs, gammas


def _discount(counts: Iterable[int]) -> float:
    """D = n1 / (n1 + 2 n2) (Ney et al. 1994); 0.5 when the counts of counts cannot say."""
    of_count = Counter(counts)
    n1, n2 = of_count[1], of_count[2]
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5


# ---------------------------------------------------------------- scoring in the search


def _lookup(keys: Tensor, values: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
    """Binary search of ``query`` among sorted ``keys``: (found, the matching values)."""
    if len(keys) == 0:
        return torch.zeros_like(query, dtype=torch.bool), torch.zeros_like(query)
    position = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
    return keys[position] == query, values[position]


class _OnDevices:
    """Tensors built on the CPU, copied once to each device that asks for them."""

    def __init__(self, tensors: dict[str, Tensor]):
        self._copies = {torch.device("cpu"): tensors}

    def on(self, device: torch.device) -> dict[str, Tensor]:
        if device not in self._copies:
            self._copies[device] = {name: t.to(device) for name, t in self._copies[torch.device("cpu")].items()}
        return self._copies[device]


class _NGramTables:
    """The model as tensors: n-gram ids, keys ``context_id * |V| + word``, backoff chains.

    Id 0 is the empty context; ids go order by order, so the states (the n-grams
    below the highest order) are ids ``0 .. num_states - 1``. Scores are read from
    rows (every word after one state) kept by a `_RowCache` per device: all rows
    up front when states x words is at most ``dense_limit``, else as states come.
    """

    DENSE_LIMIT = 1 << 21

    def __init__(self, lm: NGramLM, oov_log10prob: float, dense_limit: int | None = None):
        self.order = lm.order
        ngrams = [dict(level) for level in lm.ngrams]
        ngrams[0].setdefault((UNK,), (oov_log10prob, None))  # unknown words: <unk>, or a penalty
        self.words = {gram[0]: index for index, gram in enumerate(ngrams[0])}
        self.ids = {(): 0}
        for level in ngrams:
            self.ids.update((gram, len(self.ids)) for gram in level)
        self.num_states = 1 + sum(len(level) for level in ngrams[:-1])
        self.devices = _OnDevices(self._index([entry for level in ngrams for entry in level.values()]))
        limit = self.DENSE_LIMIT if dense_limit is None else dense_limit
        self.dense = self.num_states * len(self.words) <= limit
        self._caches: dict[torch.device, _RowCache] = {}

    def _index(self, entries: list[tuple[float, float | None]]) -> dict[str, Tensor]:
        grams = list(self.ids)[1:]
        suffix = [0] + [self._longest_suffix(gram[1:]) for gram in grams]
        keys, key_ids = torch.tensor(
            [self.ids[gram[:-1]] * len(self.words) + self.words[gram[-1]] for gram in grams], dtype=torch.long
        ).sort()
        return {
            "keys": keys,
            "key_ids": key_ids + 1,
            "log_p": torch.tensor([0.0] + [log_p * LN10 for log_p, _ in entries], dtype=torch.float64),
            "backoff": torch.tensor([0.0] + [(b or 0.0) * LN10 for _, b in entries], dtype=torch.float64),
            "suffix": torch.tensor(suffix, dtype=torch.long),
            # After reading n-gram g the state is g, or at the top order its longest suffix held.
            "next_state": torch.tensor(
                [0] + [self.ids[g] if len(g) < self.order else suffix[self.ids[g]] for g in grams],
                dtype=torch.long,
            ),
        }

    def start_state(self) -> int:
        """The state after ``<s>`` (the empty context for a unigram model)."""
        bos = self.ids.get((BOS,))
        return 0 if bos is None else int(self.devices.on(torch.device("cpu"))["next_state"][bos])

    def _longest_suffix(self, words: tuple[str, ...]) -> int:
        while words not in self.ids:
            words = words[1:]
        return self.ids[words]

    def score(self, states: Tensor, words: Tensor) -> tuple[Tensor, Tensor]:
        """Natural-log P(word | state) and the next states (word: indices into ``self.words``)."""
        if states.device not in self._caches:
            self._caches[states.device] = _RowCache(self, states.device)
        return self._caches[states.device].score(states, words)

    def search(self, states: Tensor, words: Tensor) -> tuple[Tensor, Tensor]:
        """The ARPA backoff rule, vectorised: at most ``order`` binary searches."""
        tensors = self.devices.on(states.device)
        states, words = torch.broadcast_tensors(states, words)
        total = torch.zeros(states.shape, dtype=torch.float64, device=states.device)
        found_gram = torch.zeros_like(states)
        done = torch.zeros_like(states, dtype=torch.bool)
        for _ in range(self.order):
            hit, gram = _lookup(tensors["keys"], tensors["key_ids"], states * len(self.words) + words)
            hit &= ~done
            total += torch.where(hit, tensors["log_p"][gram], tensors["backoff"][states].masked_fill(done, 0.0))
            found_gram = torch.where(hit, gram, found_gram)
            done |= hit
            states = torch.where(done, states, tensors["suffix"][states])
        return total, tensors["next_state"][found_gram]


class _RowCache:
    """Rows ``log P(w | state)`` and next state, for every word w, of the states met so far.

    A search meets few distinct states: each is looked up once for all words (one
    vectorised `_NGramTables.search`), then read by a gather. When the rows would
    pass ``LIMIT`` entries the cache starts again.
    """

    LIMIT = 1 << 22

    def __init__(self, tables: _NGramTables, device: torch.device):
        self.tables, self.vocab = tables, len(tables.words)
        self.slot_of = torch.full((tables.num_states,), -1, dtype=torch.long, device=device)
        self.log_p = torch.empty((0, self.vocab), dtype=torch.float64, device=device)
        self.next_state = torch.empty((0, self.vocab), dtype=torch.long, device=device)
        self.size = 0
        if tables.dense:
            self.slots(torch.arange(tables.num_states, device=device))

    def score(self, states: Tensor, words: Tensor) -> tuple[Tensor, Tensor]:
        flat = self.slots(states) * self.vocab + words
        return self.log_p.view(-1)[flat], self.next_state.view(-1)[flat]

    def slots(self, states: Tensor) -> Tensor:
        slots = self.slot_of[states]
        missing = slots < 0
        if bool(missing.any()):
            new = torch.unique(states[missing])
            if (self.size + len(new)) * self.vocab > max(self.LIMIT, len(new) * self.vocab):
                self.slot_of.fill_(-1)  # full: start again with the states asked for now
                self.size, new = 0, torch.unique(states)
            self._append(new)
            slots = self.slot_of[states]
        return slots

    def _append(self, states: Tensor) -> None:
        end = self.size + len(states)
        if end > len(self.log_p):  # grow by doubling, so appending stays cheap
            capacity = max(end, 2 * len(self.log_p))
            self.log_p = torch.cat([self.log_p[: self.size], self.log_p.new_empty(capacity - self.size, self.vocab)])
            self.next_state = torch.cat(
                [self.next_state[: self.size], self.next_state.new_empty(capacity - self.size, self.vocab)]
            )
        words = torch.arange(self.vocab, device=states.device)
        self.log_p[self.size : end], self.next_state[self.size : end] = self.tables.search(states[:, None], words)
        self.slot_of[states] = torch.arange(self.size, end, device=states.device)
        self.size = end


class NGramTokenScorer:
    """A token-level n-gram over a model's tokens: every token extension is scored.

    symbols: the model's token symbols (index = token id; the blank is never scored).
    A token the LM lacks reads as ``<unk>``; a model without ``<unk>`` gives it
    ``oov_log10prob``.
    """

    def __init__(
        self, lm: NGramLM, symbols: Sequence[str], oov_log10prob: float = -10.0, dense_limit: int | None = None
    ):
        self.tables = _NGramTables(lm, oov_log10prob, dense_limit)
        words = self.tables.words
        if EOS not in words:
            raise UserError(f"the language model has no {EOS}: it cannot score the end of an utterance")
        if not any(s in words for s in symbols):
            raise UserError("none of the model's tokens is a word of this language model: for a "
                            "word-level LM over a character model use NGramWordScorer")
        self.token_words = _OnDevices({"words": torch.tensor([words.get(s, words[UNK]) for s in symbols])})
        self.end = words[EOS]

    def initial_state(self) -> int:
        return self.tables.start_state()

    def score(self, states: Tensor, token_ids: Tensor) -> tuple[Tensor, Tensor]:
        words = self.token_words.on(token_ids.device)["words"][token_ids]
        return self.tables.score(states, words)

    def final_score(self, states: Tensor) -> Tensor:
        return self.tables.score(states, torch.full_like(states, self.end))[0]


class NGramWordScorer:
    """A word-level n-gram over a character model: a word is scored when it ends.

    The characters between spaces form a word; it is scored when the space token
    follows it, or at the end (`final_score`). A word the LM lacks (or that its
    symbols cannot spell) gets ``<unk>``'s probability, or ``oov_log10prob`` if the
    LM has no ``<unk>``. State = (LM state, node of a trie of the LM's words spelled
    in tokens, with one node for "no such word"), packed into one int64.
    """

    DENSE_TRIE_LIMIT = 1 << 24  # trie nodes x tokens tabulated at most

    def __init__(
        self, lm: NGramLM, symbols: Sequence[str], space: str = SPACE,
        oov_log10prob: float = -10.0, dense_limit: int | None = None,
    ):
        if space not in symbols:
            raise UserError(f"a word-level LM needs a character model with a space token ({space!r}); "
                            f"this token set has none (use a token-level LM instead)")
        self.tables = _NGramTables(lm, oov_log10prob, dense_limit)
        self.space = symbols.index(space)
        self.vocab = len(symbols)
        self._build_trie(symbols)

    def _build_trie(self, symbols: Sequence[str]) -> None:
        char_ids = {s: i for i, s in enumerate(symbols) if i != self.space}
        children: list[dict[int, int]] = [{}]
        word_at = [-1]
        for word, index in self.tables.words.items():
            if word in (BOS, EOS, UNK) or not all(c in char_ids for c in word):
                continue
            node = 0
            for char in word:
                if char_ids[char] not in children[node]:
                    children[node][char_ids[char]] = len(children)
                    children.append({})
                    word_at.append(-1)
                node = children[node][char_ids[char]]
            word_at[node] = index
        self.oov_node = len(children)
        self.nodes = len(children) + 1
        edges = sorted(
            (node * self.vocab + char, child) for node, out in enumerate(children) for char, child in out.items()
        )
        edge_keys = torch.tensor([k for k, _ in edges], dtype=torch.long)
        edge_children = torch.tensor([c for _, c in edges], dtype=torch.long)
        unk = self.tables.words[UNK]
        trie = {"word_at": torch.tensor([unk if w < 0 else w for w in word_at] + [unk], dtype=torch.long)}
        if self.nodes * self.vocab <= self.DENSE_TRIE_LIMIT:  # one gather per step instead of a search
            trie["dense"] = torch.full((self.nodes * self.vocab,), self.oov_node, dtype=torch.long)
            trie["dense"][edge_keys] = edge_children
        else:
            trie["edge_keys"], trie["edge_children"] = edge_keys, edge_children
        self.trie = _OnDevices(trie)

    def initial_state(self) -> int:
        return self.tables.start_state() * self.nodes

    def score(self, states: Tensor, token_ids: Tensor) -> tuple[Tensor, Tensor]:
        trie = self.trie.on(states.device)
        lm_states, nodes = states // self.nodes, states % self.nodes
        if "dense" in trie:
            child = trie["dense"][nodes * self.vocab + token_ids]
        else:
            found, child = _lookup(trie["edge_keys"], trie["edge_children"], nodes * self.vocab + token_ids)
            child = torch.where(found & (nodes != self.oov_node), child, self.oov_node)
        shape = child.shape  # states and tokens broadcast
        is_space = token_ids == self.space
        new_states = (lm_states * self.nodes + torch.where(is_space, 0, child)).expand(shape).clone()
        # A space closes the word before it (none after a space); only those ask the n-gram.
        closing = (is_space & (nodes != 0)).expand(shape).nonzero(as_tuple=True)
        log_p = torch.zeros(shape, dtype=torch.float64, device=states.device)
        word = trie["word_at"][nodes.expand(shape)[closing]]
        log_p[closing], after_word = self.tables.score(lm_states.expand(shape)[closing], word)
        new_states[closing] = after_word * self.nodes
        return log_p, new_states

    def final_score(self, states: Tensor) -> Tensor:
        log_p, closed = self.score(states, torch.full_like(states, self.space))
        end = torch.full_like(states, self.tables.words[EOS])
        return log_p + self.tables.score(closed // self.nodes, end)[0]


# ---------------------------------------------------------------- tuning


def tune_fusion(
    log_probs_list: Sequence[Tensor],
    lengths: Sequence[Tensor],
    references: Sequence[Sequence[int]],
    lm,
    *,
    error_rate_fn: Callable[[list[list[int]], list[list[int]]], float],
    weights: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
    bonuses: Sequence[float] = (0.0, 0.5, 1.0, 2.0),
    beam_size: int = 16,
    **search_options,
) -> tuple[float, float, list[tuple[float, float, float]]]:
    """Grid search of the LM weight and insertion bonus on held-out utterances.

    log_probs_list / lengths: batches ``(B_i, T_i, V)`` and their ``(B_i,)`` lengths;
    references: the reference token ids of every utterance, batches in order.
    error_rate_fn(hypotheses, references) -> error rate (lower is better), e.g. the
    PER/CER of asr.metrics. search_options go to `prefix_beam_search`.
    Returns (best weight, best bonus, rows of (weight, bonus, error rate)); ties go to
    the grid point met first.
    """
    from asr.decoding import prefix_beam_search

    utterances = sum(len(batch) for batch in log_probs_list)
    if utterances != len(references):
        raise UserError(f"tune_fusion: {utterances} utterances but {len(references)} references")
    table = []
    grid = [(w, b) for w in weights for b in bonuses]
    for weight, bonus in tqdm(grid, desc="tuning LM weight/bonus", leave=False):
        hypotheses = []
        for batch, batch_lengths in zip(log_probs_list, lengths):
            results = prefix_beam_search(
                batch, batch_lengths, beam_size=beam_size, lm=lm, lm_weight=weight,
                insertion_bonus=bonus, nbest=1, **search_options,
            )
            hypotheses += [found[0].tokens if found else [] for found in results]
        table.append((weight, bonus, error_rate_fn(hypotheses, [list(r) for r in references])))
    best = min(table, key=lambda row: row[2])
    return best[0], best[1], table


# ---- command line: python -m asr.lm --data CORPUS --tokens timit61 --order 2 --out phones.arpa -------------

def transcripts_as_symbols(utterances, tokens_name: str) -> list[list[str]]:
    """Training transcripts as LM symbol sequences: phones, characters (space between words) or words."""
    from asr.tokens import normalize_speech_text, token_set  # noqa: PLC0415

    if tokens_name == "timit61":
        return [u.transcript("phones").split() for u in utterances]
    if tokens_name == "words":
        return [normalize_speech_text(u.text).split() for u in utterances]
    tokens = token_set(tokens_name, (u.text for u in utterances))
    return [tokens.labels(u.text) for u in utterances]


def main(argv: Sequence[str] | None = None) -> None:
    import argparse  # noqa: PLC0415

    from asr.corpora import open_corpus  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m asr.lm", description=(
        "Train an interpolated Kneser-Ney n-gram on a corpus's training transcripts and write it as ARPA. "
        "Use it with decode.py --lm, and tune its weight with decode.py --tune-lm."))
    parser.add_argument("--data", required=True, help="corpus (TIMIT tree, LibriSpeech, manifest, IAM)")
    parser.add_argument("--split", default="train", help="split whose transcripts train it (default: train)")
    parser.add_argument("--tokens", default="timit61", choices=("timit61", "speech-chars", "chars", "words"),
                        help="symbols: TIMIT phones, speech characters, characters as written, or words")
    parser.add_argument("--order", type=int, default=2, help="n-gram order (2: the phone bigram of TIMIT work)")
    parser.add_argument("--out", required=True, help="ARPA file to write")
    args = parser.parse_args(argv)
    corpus = open_corpus(args.data)
    sequences = transcripts_as_symbols(corpus.read(args.split), args.tokens)
    lm = train_ngram(sequences, args.order)
    lm.write_arpa(args.out)
    sizes = ", ".join(f"{len(level)} {k + 1}-grams" for k, level in enumerate(lm.ngrams))
    print(f"{args.out}: {args.order}-gram over {args.tokens} from {len(sequences)} transcripts ({sizes})")


if __name__ == "__main__":
    from asr.cli import run  # noqa: PLC0415

    run(main)
