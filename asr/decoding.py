"""CTC decoders on plain log-probability tensors: best path and prefix beam search.

Both take ``log_probs`` of shape ``(B, T, V)`` (log-softmax outputs, batch-first,
blank at index ``blank``) and ``lengths`` ``(B,)``; frames past an utterance's
length are ignored.

Both return `Hypothesis` objects (tokens, scores, the frame of each token):
`greedy` one per utterance, `prefix_beam_search` a best-first list per utterance.

- `greedy`: best-path decoding (Graves et al. 2006, "Connectionist Temporal
  Classification", sec. 3.2): the most probable label per frame, repeats merged,
  blanks removed.
- `prefix_beam_search`: CTC prefix search (Graves et al. 2006, sec. 3.2; Graves
  2012, "Supervised Sequence Labelling", alg. 7.1) in the beam-search form of
  Hannun et al. 2014 (arXiv:1408.2873, alg. 1). Each prefix ``l`` keeps the log
  probability of its alignments so far that end in blank, ``p_b(l)``, and in its
  last label, ``p_nb(l)``. At frame t with emissions ``y``::

      p_b'(l)    = logsumexp(p_b(l), p_nb(l)) + y[blank]
      p_nb'(l)   = p_nb(l) + y[last(l)]                         (repeat merged)
      p_nb'(l+c) = (c == last(l) ? p_b(l) : logsumexp(p_b(l), p_nb(l))) + y[c]

  and an extension ``l+c`` that is already in the beam has its mass added to that
  entry. The score of a prefix is ``logsumexp(p_b, p_nb)``: the log probability of
  the labelling summed over all its alignments, so with an unbounded beam the
  search is exact and a final score equals ``-ctc_loss``. With a finite beam it is
  a lower bound: alignments are lost while a prefix is out of the beam.

Shallow fusion (Gulcehre et al. 2015; Hannun et al. 2014 eq. 2): with an LM the
search ranks prefixes by ``log P_ctc + lm_weight * log P_lm + insertion_bonus * len``
(natural logs; ``len`` counts the tokens of the prefix). The LM is applied where
its scorer says: a token-level LM scores every token extension; a word-level LM
over a character model scores a word when the space token ends it, and the last
word at the end of the utterance. At the end the LM's ``</s>`` is added.

How the search is vectorised: the beams of all utterances are ``(B, W)`` tensors
(``p_b``, ``p_nb``, last token, prefix hash, ...). Each frame forms all ``W * K``
extensions (K = the tokens kept by pruning) with one broadcast add, finds the
extensions that already sit in the beam by a binary search of each entry's parent
hash among the sorted hashes, and keeps the best ``W`` of the ``W + W*K``
candidates with one ``topk``. Prefix identity is a tabulation hash (Zobrist
1970): the XOR of a random 62-bit code per (position, token), so two different
prefixes collide with probability 2**-62. Tokens are recovered at the end by
following per-frame back-pointers. Only the loop over frames is in Python, so the
same code runs batched on the GPU when ``log_probs`` are there.

Hotwords and a closed vocabulary (character models; `WordBias`): a trie of the
words spelled in tokens, whose node is one more per-prefix state the search
carries beside the LM's. Hotwords are boosted by the "prefix bonus with
rollback" of contextual biasing (Aleksic et al. 2015, "Bringing contextual
information to Google speech recognition"; Zhao et al. 2019, arXiv:1902.10306;
the ContextGraph of k2/icefall and NeMo's CTC-WS, Andrusenko et al. 2024,
arXiv:2406.07096): each character that keeps the current word a prefix of a
hotword earns its boost, and a word that leaves the trie or ends before it
completes a hotword gives all of it back, so only a finished hotword keeps
``boost * len(word)``. A vocabulary scores ``-inf`` (prunes) an extension whose
current word stops being a prefix of a vocabulary word, a space after a word
outside it, and an utterance that ends inside one; every emitted word is then in
the vocabulary (hotwords are added to it). Both are added to the fusion term
with weight 1, outside ``lm_score``.

Token pruning as in flashlight's lexicon-free decoder (Kahn et al. 2022,
arXiv:2201.12465): ``top_k`` keeps the best k tokens of each frame,
``token_threshold`` drops tokens whose log-probability is more than this below the
frame's best, ``beam_threshold`` drops candidates scoring more than this below the
best candidate of the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

_HASH_BITS = 62  # prefix hashes are >= 0; -1 and -2 mark "no parent" and "empty slot"


class LMScorer(Protocol):
    """What the beam search asks of a language model.

    States are int64 tensors (opaque to the search); every method is elementwise,
    with broadcasting: the search scores ``(B, W, 1)`` states against ``(B, 1, K)``
    tokens, so per-state work can stay small. Scores are natural logs.
    """

    def initial_state(self) -> int:
        """The state before the first token (after ``<s>``)."""

    def score(self, states: Tensor, token_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probability of each token (model ids, never the blank) after each
        state, and the states that follow."""

    def final_score(self, states: Tensor) -> Tensor:
        """Log-probability of ending here (``</s>``, and any word not yet scored)."""


@dataclass
class Hypothesis:
    """One labelling found by the search.

    ``score`` ranks hypotheses: ``am_score + lm_weight * lm_score +
    insertion_bonus * len(tokens)`` (+ the hotword bonuses of `WordBias`).
    ``am_score`` is the CTC log probability of the labelling summed over its
    alignments (kept by the beam), ``lm_score`` the LM's natural-log probability
    of it, ``</s>`` included (0 without an LM).
    ``timesteps[i]`` is the frame where the likeliest alignment the beam kept
    first emits ``tokens[i]`` (where prefixes merge, the larger part decides).
    From `greedy`, the one alignment is the best path and ``am_score`` its log
    probability alone.
    """

    tokens: list[int]
    score: float
    am_score: float
    lm_score: float = 0.0
    timesteps: list[int] = field(default_factory=list)


class WordBias:
    """Hotword boosts and a closed vocabulary over a character model, as a word trie.

    symbols: the model's token symbols (index = token id); space: the symbol that
    separates words. hotwords: ``{word: boost}`` (natural-log bonus per character of
    the word); vocabulary: the only words the search may emit (``None``: any).
    A state is a trie node (0: the start of a word; ``outside``: a word that left
    the trie, only without a vocabulary). Both tables are dense, nodes x tokens, so
    a step is one gather; 16 bytes per entry (43k random words over 29 tokens:
    146k nodes, 68 MB, built in 1.4 s).
    Implements `LMScorer`.
    """

    def __init__(self, symbols, space: str = " ", hotwords: dict[str, float] | None = None,
                 vocabulary=None):
        if space not in symbols:
            raise ValueError(f"hotwords and vocabularies need a space token ({space!r}) among the symbols")
        hotwords = dict(hotwords or {})
        self.space, self.vocab = symbols.index(space), len(symbols)
        char_ids = {s: i for i, s in enumerate(symbols) if i not in (0, self.space) and len(s) == 1}
        for word in hotwords:
            missing = [c for c in word if c not in char_ids]
            if not word or missing:
                raise ValueError(f"hotword {word!r}: the model cannot spell {''.join(missing) or 'an empty word'}")
        children: list[dict[int, int]] = [{}]
        parent, hot_step = [0], [0.0]  # hot_step: the bonus earned on entering the node
        hot_end, vocab_end = [False], [False]
        kept_bonus = [0.0]  # what a hotword ending at the node keeps: boost * len(word)

        def insert(word: str, boost: float | None) -> None:
            node = 0
            for char in word:
                token = char_ids[char]
                if token not in children[node]:
                    children[node][token] = len(children)
                    children.append({})
                    parent.append(node)
                    hot_step.append(0.0)
                    hot_end.append(False)
                    vocab_end.append(False)
                    kept_bonus.append(0.0)
                node = children[node][token]
                if boost is not None:
                    hot_step[node] = max(hot_step[node], boost)
            vocab_end[node] = True
            if boost is not None:
                hot_end[node], kept_bonus[node] = True, boost * len(word)

        for word, boost in hotwords.items():
            insert(word, float(boost))
        self.closed = vocabulary is not None
        for word in vocabulary or ():
            if word and all(c in char_ids for c in word):  # a word it cannot spell it cannot emit
                insert(word, None)
        hot_total = [0.0] * len(children)  # nodes are numbered after their parents
        for node in range(1, len(children)):
            hot_total[node] = hot_total[parent[node]] + hot_step[node]
        self.outside = len(children)
        nodes = self.outside + 1
        total = torch.tensor(hot_total + [0.0], dtype=torch.float64)
        gone = float("-inf") if self.closed else 0.0
        # Leaving the trie (or, closed, the vocabulary) takes the word's bonus back.
        step = (-total)[:, None].repeat(1, self.vocab) + gone
        successor = torch.full((nodes, self.vocab), self.outside, dtype=torch.long)
        for node, out in enumerate(children):
            for token, child in out.items():
                successor[node, token] = child
                step[node, token] = hot_total[child] - hot_total[node]
        # A space ends the word: a finished hotword keeps boost * len(word) (along a prefix
        # shared with a longer hotword it may have earned more); outside a vocabulary is -inf.
        ended = torch.tensor(hot_end + [False])
        in_vocabulary = torch.tensor(vocab_end + [True]) | (not self.closed)
        in_vocabulary[0] = True  # an empty word (two spaces, a leading space) is no word
        end_score = torch.where(ended, torch.tensor(kept_bonus + [0.0], dtype=torch.float64) - total, -total)
        end_score = end_score.masked_fill(~in_vocabulary, float("-inf"))
        step[:, self.space], successor[:, self.space] = end_score, 0
        step[self.outside, :] = 0.0 if not self.closed else float("-inf")
        step[self.outside, self.space] = 0.0
        self.end_score, self.step, self.successor = end_score, step.flatten(), successor.flatten()
        self._on: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}

    def _tables(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        if device not in self._on:
            self._on[device] = (self.step.to(device), self.successor.to(device), self.end_score.to(device))
        return self._on[device]

    def initial_state(self) -> int:
        return 0

    def score(self, states: Tensor, token_ids: Tensor) -> tuple[Tensor, Tensor]:
        step, successor, _ = self._tables(states.device)
        index = states * self.vocab + token_ids
        return step[index], successor[index]

    def final_score(self, states: Tensor) -> Tensor:
        return self._tables(states.device)[2][states]

    def total(self, token_ids: list[int]) -> float:
        """What the search adds for a whole labelling (a bonus, or -inf): to test and explain results."""
        state, total = torch.tensor(0), 0.0
        for token in token_ids:
            bonus, state = self.score(state, torch.tensor(token))
            total += float(bonus)
        return total + float(self.final_score(state))


@torch.no_grad()
def greedy(log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0) -> list[Hypothesis]:
    """Best-path decoding: argmax per frame, repeats merged, blanks removed.

    log_probs: ``(B, T, V)``; lengths: ``(B,)`` frames per utterance (``None``: all T).
    Returns one `Hypothesis` per utterance: its ``score`` and ``am_score`` are the log
    probability of the best path alone (not summed over the labelling's alignments,
    as the prefix search's are), ``timesteps`` the first frame of each token's run.
    """
    best_log_p, best = log_probs.max(-1)
    inside = _frame_mask(log_probs, lengths)
    keep = (best != blank) & inside
    keep[:, 1:] &= best[:, 1:] != best[:, :-1]
    scores = best_log_p.masked_fill(~inside, 0.0).sum(1, dtype=torch.float64).tolist()
    best, keep = best.cpu(), keep.cpu()
    hypotheses = []
    for row, mask, score in zip(best, keep, scores):
        (frames,) = mask.nonzero(as_tuple=True)
        hypotheses.append(Hypothesis(row[frames].tolist(), score, score, timesteps=frames.tolist()))
    return hypotheses


def _frame_mask(log_probs: Tensor, lengths: Tensor | None) -> Tensor:
    """``(B, T)`` True on the frames inside each utterance."""
    batch, frames, _ = log_probs.shape
    if lengths is None:
        return torch.ones(batch, frames, dtype=torch.bool, device=log_probs.device)
    lengths = torch.as_tensor(lengths, device=log_probs.device)
    return torch.arange(frames, device=log_probs.device) < lengths[:, None]


@dataclass
class _Beam:
    """The beam of every utterance, its fields stacked so that one gather moves them all.

    ``scores`` ``(4, B, W)``: log probs of the prefix's alignments so far that end in
    blank and in its last label, the fusion term so far (``lm_weight * LM +
    insertion_bonus * length``), and the LM log prob alone. ``ids`` ``(4, B, W)``:
    the last token (the blank for the empty prefix), the prefix's hash, its parent's
    hash (-1 for the empty prefix), the LM state, the prefix's length, the
    `WordBias` state (0 without one). Empty slots score -inf throughout.
    """

    scores: Tensor
    ids: Tensor

    @classmethod
    def start(cls, batch: int, width: int, blank: int, lm_state: int, bias_state: int, like: Tensor) -> "_Beam":
        """Only the empty prefix, with probability 1; the other slots are empty."""
        scores = torch.full((4, batch, width), float("-inf"), dtype=like.dtype, device=like.device)
        scores[0, :, 0] = 0.0
        scores[2:, :, 0] = 0.0
        ids = torch.tensor([blank, 0, -1, lm_state, 0, bias_state], device=like.device)
        ids = ids[:, None, None].repeat(1, batch, width)
        return cls(scores, ids)


def _hash_codes(frames: int, vocab: int, device: torch.device) -> Tensor:
    """A random code per (position, token), flattened: a prefix's hash is the XOR of its codes."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 1 << _HASH_BITS, (max(frames, 1) * vocab,), generator=generator).to(device)


@dataclass
class _Candidates:
    """The tokens each frame may extend a prefix with, for all frames at once.

    ``tokens``/``log_p`` ``(B, T, K + 1)``: candidate ids and their log probs; the
    last column is a dummy (the blank, log prob -inf), where extensions that must
    not count are parked. ``column`` ``(B, T, V)``: each token's column (K if none).
    """

    tokens: Tensor
    log_p: Tensor
    column: Tensor

    @classmethod
    def of(cls, emissions: Tensor, blank: int, top_k: int | None, token_threshold: float | None) -> "_Candidates":
        batch, frames, vocab = emissions.shape
        device = emissions.device
        dummy_log_p = torch.full((batch, frames, 1), float("-inf"), dtype=emissions.dtype, device=device)
        labels = emissions.index_fill(2, torch.tensor([blank], device=device), float("-inf"))
        if top_k is not None and top_k < vocab - 1:
            log_p, tokens = labels.topk(top_k, dim=2)
            column = torch.full((batch, frames, vocab), top_k, dtype=torch.long, device=device)
            column.scatter_(2, tokens, torch.arange(top_k, device=device).expand_as(tokens))
        else:
            ids = torch.tensor([c for c in range(vocab) if c != blank], device=device)
            tokens, log_p = ids.expand(batch, frames, -1), emissions[:, :, ids]
            column = torch.arange(vocab, device=device) - (torch.arange(vocab, device=device) > blank).long()
            column = column.masked_fill(torch.arange(vocab, device=device) == blank, vocab - 1)
            column = column.expand(batch, frames, -1)
        if token_threshold is not None:
            floor = emissions.max(dim=2, keepdim=True).values - token_threshold
            log_p = log_p.masked_fill(log_p < floor, float("-inf"))
        tokens = torch.cat([tokens, torch.full_like(tokens[:, :, :1], blank)], dim=2)
        return cls(tokens, torch.cat([log_p, dummy_log_p], dim=2), column)


def _parents(key: Tensor, parent_key: Tensor, alive: Tensor) -> tuple[Tensor, Tensor]:
    """For each entry, whether its parent prefix is in the beam, and its slot.

    A binary search of each entry's parent hash among the sorted hashes: O(W log W).
    """
    keys = key.masked_fill(~alive, -2)  # empty slots match nothing (hashes are >= -1)
    sorted_keys, order = keys.sort(dim=1)
    position = torch.searchsorted(sorted_keys, parent_key).clamp(max=keys.shape[1] - 1)
    found = (sorted_keys.gather(1, position) == parent_key) & alive
    return found, order.gather(1, position)


@dataclass(frozen=True)
class _Settings:
    """What stays fixed during one search."""

    blank: int
    vocab: int
    lm: LMScorer | None
    bias: LMScorer | None
    lm_weight: float
    insertion_bonus: float
    beam_threshold: float | None
    parked: Tensor  # (B, W): each row's dummy column in the flattened (W, K+1) extensions
    hash_codes: Tensor  # from `_hash_codes`
    # For each of the W + W*(K+1) candidates: the slot it comes from, its index among the
    # extensions (0 for a kept prefix), its token column.
    source_of: Tensor
    extension_of: Tensor
    column_of: Tensor

    @classmethod
    def of(cls, batch: int, width: int, columns: int, hash_codes: Tensor, **options) -> "_Settings":
        device = hash_codes.device
        slots, extensions = torch.arange(width, device=device), torch.arange(width * columns, device=device)
        return cls(
            **options,
            parked=(slots * columns + columns - 1).expand(batch, -1),
            hash_codes=hash_codes,
            source_of=torch.cat([slots, extensions // columns]),
            extension_of=torch.cat([torch.zeros_like(slots), extensions]),
            column_of=torch.cat([torch.zeros_like(slots), extensions % columns]),
        )


def _step(
    beam: _Beam, frame: Tensor, candidates: tuple[Tensor, Tensor, Tensor], settings: _Settings
) -> tuple[_Beam, Tensor, Tensor]:
    """One frame of the prefix beam search.

    frame: ``(B, V)`` log probs; candidates: this frame's slice of `_Candidates`.
    Returns the new beam, and for each new slot the old slot it came from and the
    token it emitted (-1 when the prefix did not grow): the back-pointers.
    """
    neg_inf = float("-inf")
    tokens, token_log_p, column = candidates
    _, batch, width = beam.scores.shape
    columns = tokens.shape[1]
    p_blank, p_label, fusion, lm_log_prob = beam.scores
    last, key, parent_key, lm_state, _, bias_state = beam.ids
    total = torch.logaddexp(p_blank, p_label)
    last_log_p = frame.gather(1, last)

    # Prefixes that do not grow: a blank, or the last label repeated (merged).
    stay_blank = total + frame[:, settings.blank, None]
    stay_label = p_label + last_log_p  # -inf for the empty prefix

    # An extension l+c that is already in the beam as entry j adds its mass to j.
    has_parent, parent = _parents(key, parent_key, total > neg_inf)
    from_parent = last_log_p + torch.where(
        last.gather(1, parent) == last, p_blank.gather(1, parent), total.gather(1, parent)
    )
    # The back-pointer follows the larger part, so timesteps follow the likelier alignment.
    reborn = has_parent & (from_parent > torch.maximum(stay_blank, stay_label))
    stay_label = torch.where(has_parent, torch.logaddexp(stay_label, from_parent), stay_label)

    # Every extension, (B, W, K+1); repeating the last label extends only from p_blank;
    # those already counted in an entry, and the dummy column, are -inf.
    extend = total[:, :, None] + token_log_p[:, None, :]
    last_column = column.gather(1, last)
    extend.scatter_(2, last_column[:, :, None], (p_blank + last_log_p)[:, :, None])
    counted = torch.where(has_parent, parent * columns + last_column, settings.parked)
    extend.view(batch, -1).scatter_(1, counted, neg_inf)
    extend[:, :, -1] = neg_inf

    grown_fusion = fusion + settings.insertion_bonus
    extension_fusion = grown_fusion[:, :, None]
    lm_scores = None
    if settings.lm is not None:
        lm_log_p, next_lm_state = settings.lm.score(lm_state[:, :, None], tokens[:, None, :])
        lm_log_p = lm_log_p.to(extend.dtype).expand_as(extend)
        extension_fusion = extension_fusion + settings.lm_weight * lm_log_p
        lm_scores = (lm_log_p.reshape(batch, -1), next_lm_state.expand_as(extend).reshape(batch, -1))
    bias_scores = None
    if settings.bias is not None:
        bonus, next_bias_state = settings.bias.score(bias_state[:, :, None], tokens[:, None, :])
        bonus = bonus.to(extend.dtype)
        extension_fusion = extension_fusion + bonus
        bias_scores = (bonus.reshape(batch, -1), next_bias_state.reshape(batch, -1))
    scores = torch.cat(
        [torch.logaddexp(stay_blank, stay_label) + fusion, (extend + extension_fusion).view(batch, -1)], 1
    )
    best, chosen = scores.topk(width, dim=1)
    threshold = settings.beam_threshold
    alive = best > (neg_inf if threshold is None else best[:, :1] - threshold)

    kept = torch.stack([stay_blank, stay_label, fusion, lm_log_prob, grown_fusion])
    new, source, grows = _advance(
        beam, kept, extend.view(batch, -1), (lm_scores, bias_scores), chosen, alive, tokens, settings
    )
    # Back-pointers; a kept prefix that took most of its mass from its parent points there.
    reborn_here = reborn.gather(1, source) & ~grows
    back_source = torch.where(reborn_here, parent.gather(1, source), source)
    back_token = torch.where(grows | reborn_here, new.ids[0], -1)
    return new, back_source, back_token


def _advance(
    beam: _Beam, kept: Tensor, extensions: Tensor, fused: tuple[tuple[Tensor, Tensor] | None, ...],
    chosen: Tensor, alive: Tensor, tokens: Tensor, settings: _Settings,
) -> tuple[_Beam, Tensor, Tensor]:
    """The beam made of the chosen candidates, each a prefix kept (index < W) or an extension.

    kept ``(5, B, W)``: the kept prefixes' p_blank, p_label, fusion and LM log prob,
    and the fusion of their extensions; extensions ``(B, W*(K+1))``: their p_label;
    fused: the extensions' LM log probs and next states, and their `WordBias` bonuses
    and next states (each None when not used). Returns the new beam,
    the slot each new entry comes from, and whether it grew.
    """
    grows = chosen >= kept.shape[2]
    source, extension = settings.source_of[chosen], settings.extension_of[chosen]
    token = tokens.gather(1, settings.column_of[chosen])
    kept = kept.gather(2, source.expand(len(kept), -1, -1))
    kept_ids = beam.ids.gather(2, source.expand(len(beam.ids), -1, -1))

    grown_label = extensions.gather(1, extension)
    _, kept_key, _, grown_state, kept_length, grown_bias_state = kept_ids
    grown_fusion, grown_lm_log_prob = kept[4], kept[3]
    lm_scores, bias_scores = fused
    if bias_scores is not None:
        grown_fusion = grown_fusion + bias_scores[0].gather(1, extension)
        grown_bias_state = bias_scores[1].gather(1, extension)
    if lm_scores is not None:
        lm_log_p = lm_scores[0].gather(1, extension)
        grown_fusion = grown_fusion + settings.lm_weight * lm_log_p
        grown_lm_log_prob = grown_lm_log_prob + lm_log_p
        grown_state = lm_scores[1].gather(1, extension)
    grown = torch.stack([torch.full_like(grown_label, float("-inf")), grown_label, grown_fusion, grown_lm_log_prob])
    grown_key = kept_key ^ settings.hash_codes[kept_length * settings.vocab + token]
    grown_ids = torch.stack([token, grown_key, kept_key, grown_state, kept_length + 1, grown_bias_state])
    new = _Beam(
        scores=torch.where(grows, grown, kept[:4]).masked_fill_(~alive, float("-inf")),
        ids=torch.where(grows, grown_ids, kept_ids),
    )
    return new, source, grows


def _backtrack(sources: list[Tensor], emitted: list[Tensor], slots: Tensor) -> Tensor:
    """Follow the back-pointers from the final ``slots`` ``(B, N)``.

    Returns ``(B, N, T)`` tokens emitted at each frame (-1 for none) on the CPU.
    """
    frames = []
    for source, token in zip(reversed(sources), reversed(emitted)):
        frames.append(token.gather(1, slots))
        slots = source.gather(1, slots)
    return torch.stack(frames[::-1], dim=-1).cpu()


@torch.no_grad()
def prefix_beam_search(
    log_probs: Tensor,
    lengths: Tensor | None = None,
    beam_size: int = 16,
    blank: int = 0,
    lm: LMScorer | None = None,
    lm_weight: float = 0.0,
    insertion_bonus: float = 0.0,
    top_k: int | None = None,
    token_threshold: float | None = None,
    beam_threshold: float | None = None,
    nbest: int | None = None,
    bias: WordBias | None = None,
) -> list[list[Hypothesis]]:
    """CTC prefix beam search, batched and vectorised, with optional shallow fusion.

    log_probs: ``(B, T, V)`` log-softmax outputs on any device; lengths: ``(B,)``
    (``None``: all T frames). beam_size: prefixes kept per utterance. lm: a scorer
    (`LMScorer`, e.g. `asr.lm.NGramTokenScorer` or `asr.lm.NGramWordScorer`) fused
    with weight ``lm_weight``; ``insertion_bonus`` is added per token. top_k,
    token_threshold, beam_threshold: pruning (see the module docstring; ``None``
    prunes nothing). nbest: hypotheses returned per utterance (``None``: the beam).
    bias: hotwords and/or a closed vocabulary (`WordBias`), added to the score with
    weight 1; with a vocabulary an utterance may find no hypothesis (an empty list).

    Returns, per utterance, its hypotheses best first (``score`` descending).
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (batch, frames, vocabulary), got shape {tuple(log_probs.shape)}")
    if beam_size < 1 or (top_k is not None and top_k < 1):
        raise ValueError("beam_size and top_k must be at least 1")
    batch, _, vocab = log_probs.shape
    inside = _frame_mask(log_probs, lengths)
    # Past its end an utterance sees certain blanks: p_b + p_nb is kept and nothing grows.
    padding = torch.full((vocab,), float("-inf"), dtype=log_probs.dtype, device=log_probs.device)
    padding[blank] = 0.0
    emissions = torch.where(inside[:, :, None], log_probs, padding)
    frames = int(inside.sum(1).max()) if batch else 0

    candidates = _Candidates.of(emissions[:, :frames], blank, top_k, token_threshold)
    beam = _Beam.start(
        batch, beam_size, blank, lm.initial_state() if lm else 0, bias.initial_state() if bias else 0, log_probs
    )
    columns = candidates.tokens.shape[2]
    settings = _Settings.of(
        batch, beam_size, columns, _hash_codes(frames, vocab, log_probs.device), blank=blank, vocab=vocab, lm=lm,
        bias=bias, lm_weight=lm_weight, insertion_bonus=insertion_bonus, beam_threshold=beam_threshold,
    )
    sources, emitted = [], []
    for t in range(frames):
        frame_candidates = (candidates.tokens[:, t], candidates.log_p[:, t], candidates.column[:, t])
        beam, source, token = _step(beam, emissions[:, t], frame_candidates, settings)
        sources.append(source)
        emitted.append(token)
    return _hypotheses(beam, sources, emitted, lm, lm_weight, nbest, bias)


def _hypotheses(
    beam: _Beam, sources: list[Tensor], emitted: list[Tensor],
    lm: LMScorer | None, lm_weight: float, nbest: int | None, bias: WordBias | None = None,
) -> list[list[Hypothesis]]:
    """The final beam as `Hypothesis` lists, ``</s>`` scored, best first."""
    p_blank, p_label, fusion, lm_total = beam.scores
    am = torch.logaddexp(p_blank, p_label)
    score = am + fusion
    if lm is not None:
        end = lm.final_score(beam.ids[3]).to(am.dtype)
        score, lm_total = score + lm_weight * end, lm_total + end
    if bias is not None:
        score = score + bias.final_score(beam.ids[5]).to(am.dtype)
    keep = min(nbest or score.shape[1], score.shape[1])
    score, slots = score.topk(keep, dim=1)
    am, lm_total = am.gather(1, slots), lm_total.gather(1, slots)
    if sources:
        paths = _backtrack(sources, emitted, slots)
    else:
        paths = torch.full((*slots.shape, 0), -1, dtype=torch.long)
    score, am, lm_total = score.cpu().tolist(), am.cpu().tolist(), lm_total.cpu().tolist()
    results = []
    for b, utterance_paths in enumerate(paths.numpy()):
        hypotheses = []
        for n, path in enumerate(utterance_paths):
            if score[b][n] == float("-inf"):
                break
            (frames,) = (path >= 0).nonzero()
            hypotheses.append(
                Hypothesis(path[frames].tolist(), score[b][n], am[b][n], lm_total[b][n], frames.tolist())
            )
        results.append(hypotheses)
    return results


__all__ = ["Hypothesis", "LMScorer", "WordBias", "greedy", "prefix_beam_search"]
