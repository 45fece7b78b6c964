"""An n-gram model compiled into tensors, for lookups of many (state, word) pairs at once.

Every n-gram gets an id, a state is the id of the longest suffix of the history
that the model holds (its "context"), and a lookup of word w after state s is a
binary search for the key ``s * |V| + w`` among the n-grams' keys, backing off
along the suffix ids (at most ``order`` searches, all candidates at once): the
ARPA backoff rule of `asr.lm.arpa.NGramLM.log10_prob`, vectorised. The search
reads scores from rows (every word after one state), computed once per state met
and cached; when states x words is small (phone bigrams, character trigrams) all
rows are computed up front.
"""

from __future__ import annotations

import torch
from torch import Tensor

from asr.errors import file_error
from asr.lm.arpa import BOS, EOS, LN10, UNK, NGramLM


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
        if (EOS,) not in lm.ngrams[0]:  # every hypothesis ends with it
            raise file_error(lm.source or "the language model", f"has no {EOS} unigram, so it cannot score the end "
                             f"of an utterance", f"Add a {EOS} 1-gram (KenLM's lmplz and python -m asr.lm write one)")
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
