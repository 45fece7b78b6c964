"""Scoring and evaluating: decoded labels against references, the way each token kind is reported.

Phone models: PER after folding to 39 classes (the number Graves et al. 2013
report) and the unfolded 61-phone PER. Character models: CER and WER. Rates are
corpus-level (edits over reference length), also within each group of a test
set (`grouping`: the synthesized voice, else TIMIT's dialect region, else the
speaker), so that a held-out voice's errors are not averaged away. `evaluate`
decodes a whole test set in length-sorted batches and writes per-utterance
results, a summary and a plot.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asr.atomic import write_text
from asr.corpora.base import Utterance
from asr.corpora.batching import length_batches
from asr.dataset import compute_features
from asr.errors import UserError, file_error
from asr.metrics import ErrorCounts, char_errors, phone_errors, word_errors
from asr.tokens import TokenSet, normalize_speech_text
from asr.transcribe import best_paths, json_text


def primary_metric(tokens: TokenSet) -> str:
    """The error rate early stopping and summaries lead with: ``per`` or ``cer``."""
    return "per" if tokens.kind == "phones" else "cer"


def reference_text(tokens: TokenSet, utterance: Utterance) -> str:
    """The utterance's reference as the model's decoder would write it."""
    text = utterance.transcript(tokens.kind)
    return normalize_speech_text(text) if tokens.normalize == "speech" else " ".join(text.split())


def boundary_errors(transcriber, utterance: Utterance) -> list[float]:
    """|aligned - true| in seconds for each inner phone boundary of a TIMIT-layout utterance.

    The reference phones are force-aligned to the file (`Transcriber.align`); each
    boundary between two phones is compared with the one in the corpus's .PHN file.
    """
    rate = transcriber.config.features.sample_rate
    aligned = transcriber.align(utterance.path, utterance.transcript("phones")).segments
    return [abs(a.start - s.start / rate) for a, s in zip(aligned[1:], utterance.phones[1:])]


def utterance_counts(tokens: TokenSet, reference: str, hypothesis: Sequence[int]) -> dict[str, ErrorCounts]:
    """The error counts of one utterance by metric name; `reference` is text (`reference_text`)."""
    if tokens.kind == "phones":
        ref, hyp = reference.split(), tokens.decode(hypothesis)
        return {"per": phone_errors(ref, hyp, fold=True), "per61": phone_errors(ref, hyp, fold=False)}
    hyp = tokens.to_text(hypothesis)
    return {"cer": char_errors(reference, hyp), "wer": word_errors(reference, hyp, normalize=False)}


def corpus_counts(tokens: TokenSet, references: Sequence[str],
                  hypotheses: Sequence[Sequence[int]]) -> dict[str, ErrorCounts]:
    """Corpus-level error counts by metric name (edits summed over utterances)."""
    return summed_counts(utterance_counts(tokens, reference, hypothesis)
                         for reference, hypothesis in zip(references, hypotheses, strict=True))


def summed_counts(per_utterance: Iterable[dict[str, ErrorCounts]]) -> dict[str, ErrorCounts]:
    """The sum, metric by metric, of `utterance_counts` results: corpus-level counts."""
    totals: dict[str, ErrorCounts] = {}
    for counts in per_utterance:
        for name, c in counts.items():
            totals[name] = totals.get(name, ErrorCounts()) + c
    return totals


# Grouping kinds, finest description first: a synthesized tree's voice, then TIMIT's dialect region.
GROUP_KINDS = ("voice", "region")


def grouping(utterances: Sequence[Utterance]) -> tuple[str, list[str]]:
    """How a test set's results are broken down: the kind (``voice``, ``region`` or ``speaker``) and each
    utterance's group. A kind is used only where every utterance has it, so that no group is a leftover
    of utterances the corpus says nothing about."""
    for kind in GROUP_KINDS:
        names = [getattr(u, kind) for u in utterances]
        if names and all(names):
            return kind, names
    return "speaker", [u.speaker or "unknown" for u in utterances]


def group_counts(groups: Sequence[str], per_utterance: Sequence[dict[str, ErrorCounts]]) -> dict[str, dict]:
    """Group name (sorted) -> its utterance count and corpus-level counts by metric (``to_dict``)."""
    members: dict[str, list[dict[str, ErrorCounts]]] = {}
    for group, counts in zip(groups, per_utterance, strict=True):
        members.setdefault(group, []).append(counts)
    return {group: {"utterances": len(counts),
                    **{name: c.to_dict() for name, c in summed_counts(counts).items()}}
            for group, counts in sorted(members.items())}


def write_jsonl(records: Sequence[dict], path: Path) -> None:
    write_text(path, "".join(json_text(r) + "\n" for r in records))


Forward = Callable[[list[int]], tuple[torch.Tensor, torch.Tensor]]


def sorted_batches(lengths: Sequence[int], batch_size: int, forward: Forward,
                   desc: str = "") -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """(item indices, log posteriors (B, T, V), lengths) over batches of similar length (little padding);
    `forward(indices)` computes the posteriors of those items. `desc` shows a progress bar."""
    batches = length_batches(lengths, batch_size)
    if desc:
        batches = tqdm(batches, desc=desc, unit="batch", leave=False, mininterval=1.0)
    for indices in batches:
        yield (indices, *forward(indices))


def decode_sorted(lengths: Sequence[int], batch_size: int, forward: Forward, decode=best_paths,
                  desc: str = "") -> list[list[int]]:
    """Label ids for every item, decoded in length-sorted batches: dev scoring in training and
    test-set evaluation both decode this way. `decode(log_probs, lengths)` gives the ids of each
    row (default: best path)."""
    hypotheses: list[list[int]] = [[] for _ in lengths]
    for indices, log_probs, batch_lengths in sorted_batches(lengths, batch_size, forward, desc):
        for index, ids in zip(indices, decode(log_probs, batch_lengths), strict=True):
            hypotheses[index] = ids
    return hypotheses


def usable_features(transcriber, utterances: Sequence[Utterance], num_workers: int, log=print):
    """Features of every utterance (None where its file failed, errors logged), the indices of
    those with features, and the error messages."""
    features, errors = compute_features(utterances, transcriber.frontend, num_workers, desc="test features")
    for error in errors:
        log(f"error: {error}")
    return features, [i for i, f in enumerate(features) if f is not None and len(f)], errors


def evaluate(transcriber, utterances: Sequence[Utterance], out: str | os.PathLike, batch_size: int = 16,
             num_workers: int = 0, plot_id: str | None = None, log=print) -> dict:
    """Decode `utterances`, score them, write ``results.jsonl`` and ``summary.json`` to `out`, then a plot.

    The summary is written before the plot, so an evaluation whose plot fails still leaves its numbers.
    """
    out = output_folder(out)
    tokens = transcriber.tokens
    started = time.perf_counter()
    features, usable, errors = usable_features(transcriber, utterances, num_workers, log)
    wanted = next((i for i in usable if utterances[i].id == plot_id), usable[0] if usable else None)
    kept: dict[int, torch.Tensor] = {}

    def forward(positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        indices = [usable[j] for j in positions]
        log_probs, lengths = transcriber.log_probs([features[i] for i in indices])
        if wanted in indices:
            row = indices.index(wanted)  # only what the plot shows, copied: the batch is not kept alive
            kept[wanted] = log_probs[row, : min(int(lengths[row]), PLOT_FRAMES)].clone()
        return log_probs, lengths

    decoded = decode_sorted([len(features[i]) for i in usable], batch_size, forward,
                            lambda lp, n: [ids for ids, _ in transcriber.decode(lp, n)], desc="decoding")
    hypotheses = dict(zip(usable, decoded))
    seconds = time.perf_counter() - started
    results, totals, by_group = score(tokens, [utterances[i] for i in usable], [hypotheses[i] for i in usable])
    summary = summarise(transcriber, sum(len(features[i]) for i in usable), len(usable), totals, seconds, errors,
                        by_group)
    write_jsonl(results, out / "results.jsonl")
    write_text(out / "summary.json", json_text(summary, indent=2) + "\n")
    if wanted is not None:
        summary["plot"] = str(plot_utterance(transcriber, utterances[wanted], features[wanted], kept[wanted], out))
        write_text(out / "summary.json", json_text(summary, indent=2) + "\n")
    return summary


def score(tokens: TokenSet, utterances: Sequence[Utterance],
          hypotheses: Sequence[Sequence[int]]) -> tuple[list[dict], dict[str, ErrorCounts], dict]:
    """Per-utterance result records, the corpus-level counts and the per-group breakdown (``by_group``)
    of the decoded `hypotheses` (label ids) of `utterances`. Each utterance is scored once: its counts
    make its record, the totals and its group's counts, so the groups add up to the totals exactly."""
    kind, groups = grouping(utterances)
    references = [reference_text(tokens, u) for u in utterances]
    counts = [utterance_counts(tokens, r, h) for r, h in zip(references, hypotheses, strict=True)]
    results = [{"id": u.id, "path": str(u.path), "group": group, "reference": reference,
                "hypothesis": tokens.to_text(hypothesis), **{name: c.to_dict() for name, c in scores.items()}}
               for u, group, reference, hypothesis, scores in zip(utterances, groups, references, hypotheses, counts,
                                                                  strict=True)]
    return results, summed_counts(counts), {"kind": kind, "groups": group_counts(groups, counts)}


def output_folder(out: str | os.PathLike) -> Path:
    """`out`, made if missing; checked before the decoding, so a bad name costs no work."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise file_error(out, f"cannot be made a folder for the results ({error.strerror})",
                         "Give a folder that is not a file and lies in a writable place") from None
    return out


# Frames plotted at most (30 s of 10 ms frames): the plot force-aligns what it shows, and the
# alignment of a one-hour utterance would need more memory than a machine has.
PLOT_FRAMES = 3000


def plot_utterance(transcriber, utterance: Utterance, features: torch.Tensor, log_probs: torch.Tensor,
                   out: Path) -> Path:
    """Plot the start of `utterance` (at most `PLOT_FRAMES` frames of its posteriors `log_probs`) to
    ``out/<id>.png``; the decoded labels shown are those of the plotted frames."""
    from asr.plots import plot_posteriors  # noqa: PLC0415 (matplotlib only when plotting)

    frontend, tokens = transcriber.frontend, transcriber.tokens
    log_probs = log_probs[:PLOT_FRAMES]
    frames = len(log_probs)
    (ids, _), = transcriber.decode(log_probs[None], torch.tensor([frames]))
    edges = np.array([frontend.frame_edge(t) for t in range(frames + 1)])
    end = float(edges[-1])
    reference = [(label, start, min(stop, end)) for label, start, stop in frontend.reference_segments(utterance)
                 if start < end]
    shown = "" if frames == len(features) else f" (the first {end:g} {frontend.unit} of " \
                                                    f"{frontend.frame_edge(len(features)):g})"
    title = (f"{utterance.id}{shown}\ndecoded: {shorten(tokens.to_text(ids))}\n"
             f"reference: {shorten(reference_text(tokens, utterance))}")
    path = out / f"{utterance.id}.png"
    plot_posteriors(path, title=title, picture=frontend.picture(features[:frames]), edges=edges,
                    posteriors=log_probs.exp().numpy(), symbols=tokens.symbols,
                    decoded=[(s.label, s.start, s.end) for s in transcriber.segments(log_probs, ids)],
                    reference=reference)
    return path


def shorten(text: str, limit: int = 150) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tune_language_model(transcriber, utterances: Sequence[Utterance], beam_size: int = 16, batch_size: int = 16,
                        num_workers: int = 0, log=print, save_to: str | os.PathLike | None = None,
                        metric: str | None = None, **grid) -> tuple[float, float, list]:
    """Grid-search the transcriber's LM weight and insertion bonus for the lowest error rate on `utterances`:
    `metric` (default the model's primary one, PER or CER; ``wer`` for a character model's word LM, whose
    weight tuned on CER can cost words: it deletes short ones).

    save_to: a model folder to store the LM and the best settings in (`asr.fusion.save_decoding_settings`),
    so that the model decodes with them by default; the LM must then come from a file
    (`Transcriber.from_checkpoint` records it). Checked before the search, so a bad folder costs no work.
    """
    from asr.fusion import save_decoding_settings  # noqa: PLC0415

    if save_to is not None and transcriber.lm_path is None:
        raise UserError("tune_language_model: save_to needs a transcriber whose LM comes from an ARPA file "
                        "(Transcriber.from_checkpoint(..., lm_path=ARPA))")
    if save_to is not None:
        output_folder(save_to)
    metric = metric or primary_metric(transcriber.tokens)
    if metric not in ("per", "cer", "wer") or (metric == "per") != (transcriber.tokens.kind == "phones"):
        raise UserError(f"tuning on {metric!r}: a {transcriber.tokens.kind} model is scored by "
                        f"{'per' if transcriber.tokens.kind == 'phones' else 'cer or wer'}")
    weight, bonus, table = _tune(transcriber, utterances, beam_size, batch_size, num_workers, log, metric, grid)
    if save_to is not None:
        path = save_decoding_settings(save_to, transcriber.lm_path, weight, bonus, beam_size)
        log(f"stored the LM and its settings: {path}")
    return weight, bonus, table


def _tune(transcriber, utterances: Sequence[Utterance], beam_size: int, batch_size: int, num_workers: int, log,
          metric: str, grid: dict) -> tuple[float, float, list]:
    """`tune_fusion` on the posteriors of `utterances`, scored by `metric`."""
    from asr.fusion import tune_fusion  # noqa: PLC0415

    tokens = transcriber.tokens
    features, usable, _ = usable_features(transcriber, utterances, num_workers, log)

    def forward(positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return transcriber.log_probs([features[usable[j]] for j in positions])

    order, log_probs, lengths = [], [], []
    for positions, batch_log_probs, batch_lengths in sorted_batches([len(features[i]) for i in usable], batch_size,
                                                                    forward, desc="decoding"):
        indices = [usable[j] for j in positions]
        order += indices
        log_probs.append(batch_log_probs)
        lengths.append(batch_lengths)
    texts = [reference_text(tokens, utterances[i]) for i in order]
    # References travel through tune_fusion as one-element lists holding their position in `texts`,
    # so that test transcripts with labels the model lacks are still scored as text.
    positions = [[k] for k in range(len(order))]

    def error_rate(hypotheses, references):
        return corpus_counts(tokens, [texts[r[0]] for r in references], hypotheses)[metric].rate

    return tune_fusion(log_probs, lengths, positions, transcriber.lm, error_rate_fn=error_rate,
                       beam_size=beam_size, **grid)


def summarise(transcriber, frames: int, utterances: int, totals: dict, seconds: float, errors: list,
              by_group: dict | None = None) -> dict:
    """The numbers of an evaluation; `by_group` is ``{"kind": ..., "groups": group_counts(...)}``."""
    summary = {"utterances": utterances, "failed": len(errors), "decode_seconds": seconds,
               "beam_size": transcriber.beam_size, "lm": str(transcriber.lm_path) if transcriber.lm_path else None,
               "lm_weight": transcriber.lm_weight if transcriber.lm else None,
               "insertion_bonus": transcriber.insertion_bonus if transcriber.lm else None,
               **{name: c.to_dict() for name, c in totals.items()}}
    input_seconds = transcriber.frontend.seconds(frames)
    if input_seconds is None:  # line images have no duration to compare the decoding time with
        summary.update(seconds_per_line=seconds / max(utterances, 1))
    else:
        summary.update(audio_seconds=input_seconds, real_time_factor=seconds / max(input_seconds, 1e-9))
    if by_group is not None:
        summary["by_group"] = by_group
    return summary


METRIC_LABELS = {"per": "PER (39 folded phones)", "per61": "PER (61 phones)", "cer": "CER", "wer": "WER"}
SHORT_LABELS = {"per": "PER", "per61": "PER61", "cer": "CER", "wer": "WER"}

# Groups listed one per line at most; more (the speakers of a large corpus) would bury the totals.
MAX_GROUP_LINES = 30


def metric_names(tokens: TokenSet) -> tuple[str, str]:
    return ("per", "per61") if tokens.kind == "phones" else ("cer", "wer")


def format_summary(summary: dict, tokens: TokenSet) -> str:
    """The lines a person reads after an evaluation."""
    lines = []
    for name in (n for n in metric_names(tokens) if n in summary):
        c = summary[name]
        lines.append(f"{METRIC_LABELS[name]:<24} {percent(c['rate'])}  (S {c['substitutions']}, "
                     f"D {c['deletions']}, I {c['insertions']} of {c['reference_length']})")
    speed = (f"real-time factor {summary['real_time_factor']:.3f} ({summary['audio_seconds'] / 60:.1f} min of audio "
             f"in {summary['decode_seconds']:.1f} s)" if "real_time_factor" in summary
             else f"{summary['seconds_per_line'] * 1000:.0f} ms per line")
    lines.append(f"{summary['utterances']} utterances decoded, {summary['failed']} failed; {speed}")
    if summary.get("by_group"):
        lines += format_groups(summary["by_group"], metric_names(tokens))
    return "\n".join(lines)


def format_groups(by_group: dict, names: Sequence[str]) -> list[str]:
    """One line per group, sorted by name: its rates and reference lengths; past `MAX_GROUP_LINES`
    groups only their number."""
    kind, groups = by_group["kind"], by_group["groups"]
    if not groups:  # nothing was decoded
        return []
    if len(groups) > MAX_GROUP_LINES:
        return [f"{len(groups)} groups by {kind}: their rates are in summary.json (by_group)"]
    width = max(map(len, groups))
    lines = [f"by {kind}:"]
    for group, scores in sorted(groups.items()):
        rates = "  ".join(f"{SHORT_LABELS[n]} {percent(scores[n]['rate'])} of {scores[n]['reference_length']:<6}"
                          for n in names if n in scores)
        lines.append(f"  {group:<{width}}  {rates}  ({scores['utterances']} utterances)")
    return lines


def percent(rate: float | None) -> str:
    """A rate as a person reads it; None (an infinite rate once through JSON) is shown as such."""
    return "   n/a " if rate is None else f"{100 * rate:6.2f}%"


def calibration(transcriber, utterances: Sequence[Utterance], plot: str | os.PathLike, bins: int = 10) -> dict:
    """How well word confidences (`asr.transcribe.words_of`) predict correctness on `utterances`: a word is
    right when the minimal word alignment (jiwer) pairs it with an identical reference word. Writes a
    reliability diagram to `plot` and returns the expected calibration error, the word count and accuracy."""
    from asr.metrics import correct_words, expected_calibration_error, reliability_bins  # noqa: PLC0415
    from asr.plots import plot_reliability  # noqa: PLC0415

    confidences, correct = [], []
    for utterance in tqdm(utterances, desc="word confidences", leave=False):
        words = transcriber.transcribe(utterance.path).words
        confidences += [w.confidence for w in words]
        correct += correct_words(reference_text(transcriber.tokens, utterance).split(), [w.word for w in words])
    table = reliability_bins(confidences, correct, bins)
    ece = expected_calibration_error(confidences, correct, bins)
    plot_reliability(table, plot, title=f"word confidence: ECE {ece:.3f}, {len(correct)} words")
    return {"ece": ece, "words": len(correct), "accuracy": sum(correct) / max(len(correct), 1), "bins": table}
