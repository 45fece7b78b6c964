"""Our prefix beam search against flashlight's lexicon-free CTC decoder (torchaudio).

Both decode the same synthetic emissions (B utterances of T frames, V outputs,
blank 0) without an LM, at the same beam size, tokens per frame
(``top_k`` = flashlight's ``beam_size_token``) and beam threshold. For each
setting it prints the agreement of the top hypotheses (percent identical) on
peaked and on softer emissions; on the softer ones, where they differ, which top
labelling is the more probable by the exact CTC probability (``-ctc_loss``, all
alignments); and the time ratio ours / flashlight on the peaked ones: the median
over interleaved repeats, in CPU time (robust on a shared machine) and wall-clock
time, both on one thread (flashlight decodes one utterance at a time on one core;
``--threads`` gives torch more).

The emissions come from a known labelling: labels held 1-5 frames, blank runs of
0-4 frames between them, ``sharpness`` added to the path's logits over unit
Gaussian noise, then log-softmax.

flashlight's lexicon-free decoder needs a silence token. It gets one more output,
"|", whose log probability is -1e4 at every frame so it never fires; flashlight
still opens (and may close) every hypothesis with it, so "|" is removed from its
output before comparing. Its cost is one more column of the emissions.

With ``--lm`` it also times shallow fusion (a phone bigram, a character 5-gram,
a word trigram over characters) against the same search without an LM.

With ``--bias`` it times hotwords and a closed vocabulary (`asr.decoding.WordBias`)
over speech characters against the same search without them, on emissions spelled
from the vocabulary's words; ``--no-compare`` skips the flashlight table.

Run: python benchmarks/decode.py [--repeats 5] [--threads 1] [--batch 16 --frames 300] [--lm] [--bias]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F

from asr.decoding import WordBias, prefix_beam_search
from asr.lm import NGramTokenScorer, NGramWordScorer, train_ngram
from asr.tokens import speech_characters, timit_phones

BLANK, SILENCE = "<blank>", "|"


def synthetic_emissions(batch: int, frames: int, vocab: int, sharpness: float, seed: int) -> torch.Tensor:
    """``(B, T, V)`` log probs peaked along a random labelling's alignment."""
    generator = torch.Generator().manual_seed(seed)
    paths = torch.zeros(batch, frames, dtype=torch.long)
    for b in range(batch):
        t = 0
        while t < frames:
            t += int(torch.randint(0, 5, (), generator=generator))  # blanks
            label = int(torch.randint(1, vocab, (), generator=generator))
            hold = int(torch.randint(1, 6, (), generator=generator))
            paths[b, t : t + hold] = label
            t += hold
    logits = torch.randn(batch, frames, vocab, generator=generator)
    logits.scatter_add_(2, paths[:, :, None], torch.full((batch, frames, 1), sharpness))
    return logits.log_softmax(-1)


class Flashlight:
    """torchaudio's ctc_decoder, lexicon-free, with a silence output that never fires."""

    def __init__(self, vocab: int, beam_size: int, top_k: int | None, beam_threshold: float):
        from torchaudio.models.decoder import ctc_decoder

        tokens = [BLANK] + [f"t{i}" for i in range(1, vocab)] + [SILENCE]
        self.silence = vocab
        self.decoder = ctc_decoder(
            lexicon=None, tokens=tokens, lm=None, nbest=1, beam_size=beam_size,
            beam_size_token=min(top_k or vocab, vocab), beam_threshold=beam_threshold,
            blank_token=BLANK, sil_token=SILENCE,
        )

    def prepare(self, log_probs: torch.Tensor) -> torch.Tensor:
        silence = torch.full((*log_probs.shape[:2], 1), -1e4, dtype=log_probs.dtype)
        return torch.cat([log_probs, silence], dim=2).contiguous()

    def __call__(self, emissions: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        results = self.decoder(emissions, lengths)
        return [[t for t in r[0].tokens.tolist() if t != self.silence] for r in results]


def ours(log_probs, lengths, beam_size, top_k, beam_threshold) -> list[list[int]]:
    found = prefix_beam_search(
        log_probs, lengths, beam_size=beam_size, top_k=top_k, beam_threshold=beam_threshold, nbest=1
    )
    return [h[0].tokens for h in found]


def timed(function, *args) -> tuple[float, float, list]:
    """Wall-clock and CPU seconds of one call (this process, so both run on one thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    return 100.0 * sum(x == y for x, y in zip(a, b)) / len(a)


def exact_log_prob(log_probs: torch.Tensor, lengths: torch.Tensor, labellings: list[list[int]]) -> torch.Tensor:
    """log P(labelling | x) summed over all alignments (= -ctc_loss), per utterance."""
    targets = torch.tensor([t for labels in labellings for t in labels], dtype=torch.long)
    target_lengths = torch.tensor([len(labels) for labels in labellings])
    return -F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, target_lengths, reduction="none")


def compare(args, vocab: int, beam_size: int, top_k: int | None) -> dict:
    lengths = torch.full((args.batch,), args.frames, dtype=torch.long)
    lengths[1::2] -= torch.randint(0, args.frames // 3, (args.batch // 2,), generator=torch.Generator().manual_seed(1))
    peaked = synthetic_emissions(args.batch, args.frames, vocab, sharpness=8.0, seed=vocab)
    soft = synthetic_emissions(args.batch, args.frames, vocab, sharpness=3.0, seed=vocab + 1)
    flashlight = Flashlight(vocab, beam_size, top_k, args.beam_threshold)
    ours_args = (beam_size, top_k, args.beam_threshold)
    row = {"vocab": vocab, "beam": beam_size, "top_k": top_k or "all"}
    theirs, mine = flashlight(flashlight.prepare(soft), lengths), ours(soft, lengths, *ours_args)
    row["agree_soft"] = agreement(theirs, mine)
    # Where they differ, which labelling is the more probable one, exactly (ctc_loss)?
    gain = exact_log_prob(soft, lengths, mine) - exact_log_prob(soft, lengths, theirs)
    row["soft_better"] = 100.0 * float((gain > 1e-3).float().mean())
    row["soft_worse"] = 100.0 * float((gain < -1e-3).float().mean())
    row["soft_gain"] = float(gain.mean())
    emissions = flashlight.prepare(peaked)
    theirs = timed(flashlight, emissions, lengths)[2]  # warm-up and agreement
    mine = timed(ours, peaked, lengths, *ours_args)[2]
    row["agree_peaked"] = agreement(theirs, mine)
    times = {"ours": [], "flashlight": []}
    for repeat in range(args.repeats):  # interleaved, alternating who goes first
        runs = [("ours", lambda: timed(ours, peaked, lengths, *ours_args)),
                ("flashlight", lambda: timed(flashlight, emissions, lengths))]
        for name, run in runs if repeat % 2 == 0 else runs[::-1]:
            times[name].append(run()[:2])
    for clock, which in (("wall", 0), ("cpu", 1)):
        ours_s = [t[which] for t in times["ours"]]
        theirs_s = [t[which] for t in times["flashlight"]]
        ratios = [a / b for a, b in zip(ours_s, theirs_s)]
        row[clock] = (statistics.median(theirs_s), statistics.median(ours_s),
                      statistics.median(ratios), min(ratios), max(ratios))
    return row


def lm_scorers(seed: int = 0) -> list[tuple[str, object, int]]:
    """(name, scorer, vocabulary size) for a phone bigram, a character 5-gram and a
    word trigram over characters, trained on random text (their size is what matters)."""
    generator = torch.Generator().manual_seed(seed)
    pick = lambda n, k: torch.randint(0, n, (k,), generator=generator).tolist()  # noqa: E731
    phones, chars = timit_phones(), speech_characters()
    phone_text = [[phones.symbols[1 + i] for i in pick(61, 30)] for _ in range(3000)]
    letters = chars.symbols[2:]
    words = ["".join(letters[i] for i in pick(len(letters), 2 + pick(7, 1)[0])) for _ in range(5000)]
    sentences = [[words[i] for i in pick(len(words), 12)] for _ in range(5000)]
    return [
        ("phone bigram", NGramTokenScorer(train_ngram(phone_text, 2, phones.symbols[1:]), phones.symbols), len(phones)),
        ("char 5-gram", NGramTokenScorer(train_ngram([list(" ".join(s)) for s in sentences], 5, chars.symbols[1:]),
                                         chars.symbols), len(chars)),
        ("word 3-gram", NGramWordScorer(train_ngram(sentences, 3), chars.symbols), len(chars)),
    ]


def lm_overhead(args) -> None:
    """CPU time of the search with each LM over the time without one."""
    print("\n| LM | n-grams | beam | CPU s without LM | with LM | ratio (median) |")
    print("|---|---|---|---|---|---|")
    lengths = torch.full((args.batch,), args.frames, dtype=torch.long)
    for name, scorer, vocab in lm_scorers():
        emissions = synthetic_emissions(args.batch, args.frames, vocab, sharpness=8.0, seed=vocab)
        grams = len(scorer.tables.ids) - 1
        for beam_size in args.beams:
            plain = partial(prefix_beam_search, emissions, lengths, beam_size=beam_size, nbest=1)
            fused = partial(prefix_beam_search, emissions, lengths, beam_size=beam_size, lm=scorer, lm_weight=0.5,
                            nbest=1)
            plain(), fused()  # warm-up
            pairs = [(timed(plain)[1], timed(fused)[1]) for _ in range(args.repeats)]
            ratio = statistics.median(b / a for a, b in pairs)
            print(f"| {name} | {grams} | {beam_size} | {statistics.median(a for a, _ in pairs):.3f} "
                  f"| {statistics.median(b for _, b in pairs):.3f} | {ratio:.2f} |", flush=True)


def spoken_emissions(batch: int, frames: int, words: list[str], symbols, sharpness: float, seed: int):
    """``(B, T, V)`` log probs peaked along the alignment of random sentences of `words`."""
    generator = torch.Generator().manual_seed(seed)
    index = {s: i for i, s in enumerate(symbols)}
    paths = torch.zeros(batch, frames, dtype=torch.long)
    for b in range(batch):
        t, labels = 0, []
        while t < frames:
            if not labels:
                labels = [index[c] for c in words[int(torch.randint(0, len(words), (), generator=generator))] + " "]
            t += int(torch.randint(0, 3, (), generator=generator))  # blanks
            hold = int(torch.randint(1, 4, (), generator=generator))
            paths[b, t: t + hold] = labels.pop(0)
            t += hold
    logits = torch.randn(batch, frames, len(symbols), generator=generator)
    logits.scatter_add_(2, paths[:, :, None], torch.full((batch, frames, 1), sharpness))
    return logits.log_softmax(-1)


def bias_overhead(args) -> None:
    """CPU time of the search with hotwords and/or a vocabulary over the time without them."""
    generator = torch.Generator().manual_seed(0)
    chars = speech_characters()
    letters = chars.symbols[3:]  # a-z
    words = sorted({"".join(letters[int(i)] for i in torch.randint(0, 26, (int(n),), generator=generator))
                    for n in torch.randint(2, 10, (args.bias_vocabulary,), generator=generator)})
    emissions = spoken_emissions(args.batch, args.frames, words, chars.symbols, sharpness=3.0, seed=1)
    lengths = torch.full((args.batch,), args.frames, dtype=torch.long)
    hotwords = {word: 1.0 for word in words[:: max(1, len(words) // args.hotwords)][: args.hotwords]}
    settings = [
        (f"{len(hotwords)} hotwords", WordBias(chars.symbols, hotwords=hotwords)),
        (f"vocabulary of {len(words)}", WordBias(chars.symbols, vocabulary=words)),
        ("both", WordBias(chars.symbols, hotwords=hotwords, vocabulary=words)),
    ]
    print(f"\n| biasing (V={len(chars)}) | trie nodes | beam | CPU s without | with | ratio (median [min, max]) "
          f"| top-1 changed |")
    print("|---|---|---|---|---|---|---|")
    for name, bias in settings:
        for beam_size in args.beams:
            plain = partial(prefix_beam_search, emissions, lengths, beam_size=beam_size, nbest=1)
            biased = partial(prefix_beam_search, emissions, lengths, beam_size=beam_size, nbest=1, bias=bias)
            same = agreement([h[0].tokens if h else [] for h in plain()],
                                [h[0].tokens if h else [] for h in biased()])  # also the warm-up
            pairs = []
            for repeat in range(args.repeats):  # interleaved, alternating who goes first
                first, second = (plain, biased) if repeat % 2 == 0 else (biased, plain)
                a, b = timed(first)[1], timed(second)[1]
                pairs.append((a, b) if repeat % 2 == 0 else (b, a))
            ratios = [b / a for a, b in pairs]
            print(f"| {name} | {bias.outside} | {beam_size} | {statistics.median(a for a, _ in pairs):.3f} "
                  f"| {statistics.median(b for _, b in pairs):.3f} | {statistics.median(ratios):.2f} "
                  f"[{min(ratios):.2f}, {max(ratios):.2f}] | {100 - same:.0f}% |", flush=True)


def timing(figures: tuple[float, ...]) -> str:
    theirs, mine, ratio, low, high = figures
    return f"{theirs:.3f} / {mine:.3f} | {ratio:.2f} [{low:.2f}, {high:.2f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--vocabs", type=int, nargs="+", default=[62, 30])
    parser.add_argument("--beams", type=int, nargs="+", default=[16, 100])
    parser.add_argument("--top-ks", type=int, nargs="+", default=[0, 8], help="tokens per frame; 0 = all")
    parser.add_argument("--beam-threshold", type=float, default=50.0, help="flashlight's default")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lm", action="store_true", help="also time shallow fusion with n-gram LMs")
    parser.add_argument("--bias", action="store_true", help="also time hotwords and a closed vocabulary")
    parser.add_argument("--bias-vocabulary", type=int, default=5000, help="words in the --bias vocabulary")
    parser.add_argument("--hotwords", type=int, default=100, help="hotwords for --bias")
    parser.add_argument("--no-compare", action="store_true", help="skip the comparison with flashlight")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"B={args.batch} T={args.frames} (odd utterances shorter), beam threshold {args.beam_threshold}, "
          f"torch threads {args.threads}, {args.repeats} interleaved repeats")
    if not args.no_compare:
        print("| V | beam | tokens/frame | top-1 agreement, peaked | top-1 agreement, soft "
              "| soft: ours more / less probable | soft: mean log P ours - flashlight "
              "| CPU s flashlight / ours | CPU ratio ours / flashlight (median [min, max]) "
              "| wall s flashlight / ours | wall ratio (median [min, max]) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
    for vocab in [] if args.no_compare else args.vocabs:
        for beam_size in args.beams:
            for top_k in args.top_ks:
                r = compare(args, vocab, beam_size, top_k or None)
                print(f"| {r['vocab']} | {r['beam']} | {r['top_k']} "
                      f"| {r['agree_peaked']:.0f}% | {r['agree_soft']:.0f}% "
                      f"| {r['soft_better']:.0f}% / {r['soft_worse']:.0f}% | {r['soft_gain']:+.2f} "
                      f"| {timing(r['cpu'])} | {timing(r['wall'])} |", flush=True)
    if args.lm:
        lm_overhead(args)
    if args.bias:
        bias_overhead(args)


if __name__ == "__main__":
    main()
