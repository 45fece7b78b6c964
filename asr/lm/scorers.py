"""The scorers the beam search uses for shallow fusion (`asr.decoding.LMScorer`).

- `NGramTokenScorer` scores every token with a token-level n-gram (a phone bigram,
  a character n-gram).
- `NGramWordScorer` puts a word-level model over a character model and scores each
  word when the space token (or the end) closes it.

Both read their scores from `asr.lm.tables._NGramTables` (natural logs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from asr.errors import UserError
from asr.lm.arpa import BOS, EOS, SPACE, UNK, NGramLM
from asr.lm.tables import _lookup, _NGramTables, _OnDevices


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
