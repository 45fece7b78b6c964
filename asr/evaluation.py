"""Scoring and evaluating: decoded labels against references, the way each token kind is reported.

Phone models: PER after folding to 39 classes (the number Graves et al. 2013
report) and the unfolded 61-phone PER. Character models: CER and WER. Rates are
corpus-level (edits over reference length). `evaluate` decodes a whole test set
in length-sorted batches and writes per-utterance results, a summary and a plot.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from asr.atomic import write_text
from asr.corpora.base import Utterance
from asr.corpora.batching import length_batches
from asr.dataset import compute_features
from asr.metrics import ErrorCounts, char_errors, phone_errors, word_errors
from asr.tokens import TokenSet, normalize_speech_text


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
    totals: dict[str, ErrorCounts] = {}
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        for name, counts in utterance_counts(tokens, reference, hypothesis).items():
            totals[name] = totals.get(name, ErrorCounts()) + counts
    return totals


def write_jsonl(records: Sequence[dict], path: Path) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def posterior_batches(transcriber, utterances: Sequence[Utterance], batch_size: int, num_workers: int, log=print):
    """Features of every utterance (None where its file failed, errors logged) and a generator of
    (utterance indices, log posteriors (B, T, V), lengths) over length-sorted batches."""
    features, errors = compute_features(utterances, transcriber.frontend, num_workers, desc="test features")
    for error in errors:
        log(f"error: {error}")
    usable = [i for i, f in enumerate(features) if f is not None and len(f)]

    def batches():
        for batch in tqdm(length_batches([len(features[i]) for i in usable], batch_size), desc="decoding",
                          unit="batch", leave=False, mininterval=1.0):
            indices = [usable[j] for j in batch]
            yield (indices, *transcriber.log_probs([features[i] for i in indices]))

    return features, usable, errors, batches()


def evaluate(transcriber, utterances: Sequence[Utterance], out: str | os.PathLike, batch_size: int = 16,
             num_workers: int = 0, plot_id: str | None = None, log=print) -> dict:
    """Decode `utterances`, score them, write ``results.jsonl``, ``summary.json`` and a plot to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokens = transcriber.tokens
    started = time.perf_counter()
    features, usable, errors, batches = posterior_batches(transcriber, utterances, batch_size, num_workers, log)
    wanted = next((i for i in usable if utterances[i].id == plot_id), usable[0] if usable else None)
    hypotheses: dict[int, list[int]] = {}
    posteriors: dict[int, torch.Tensor] = {}
    for indices, log_probs, lengths in batches:
        for index, (ids, _), lp, n in zip(indices, transcriber.decode(log_probs, lengths), log_probs, lengths):
            hypotheses[index] = ids
            if index == wanted:
                posteriors[index] = lp[:n]
    seconds = time.perf_counter() - started
    references = {i: reference_text(tokens, utterances[i]) for i in usable}
    results = []
    for i in usable:
        counts = utterance_counts(tokens, references[i], hypotheses[i])
        results.append({"id": utterances[i].id, "path": str(utterances[i].path), "reference": references[i],
                        "hypothesis": tokens.to_text(hypotheses[i]),
                        **{name: c.to_dict() for name, c in counts.items()}})
    totals = corpus_counts(tokens, [references[i] for i in usable], [hypotheses[i] for i in usable])
    summary = summarise(transcriber, features, usable, totals, seconds, errors)
    write_jsonl(results, out / "results.jsonl")
    if wanted is not None:
        from asr.plots import plot_posteriors  # noqa: PLC0415 (matplotlib only when plotting)
        utterance = utterances[wanted]
        plot_posteriors(transcriber, utterance, features[wanted], posteriors[wanted], hypotheses[wanted],
                        out / f"{utterance.id}.png")
        summary["plot"] = str(out / f"{utterance.id}.png")
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def tune_language_model(transcriber, utterances: Sequence[Utterance], beam_size: int = 16, batch_size: int = 16,
                        num_workers: int = 0, log=print, **grid) -> tuple[float, float, list]:
    """Grid-search the transcriber's LM weight and insertion bonus for the lowest PER/CER on `utterances`."""
    from asr.fusion import tune_fusion  # noqa: PLC0415

    tokens, metric = transcriber.tokens, primary_metric(transcriber.tokens)
    _, usable, _, batches = posterior_batches(transcriber, utterances, batch_size, num_workers, log)
    order, log_probs, lengths = [], [], []
    for indices, batch_log_probs, batch_lengths in batches:
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


def summarise(transcriber, features, usable, totals, seconds, errors) -> dict:
    step = transcriber.frame_step
    frames = sum(len(features[i]) for i in usable)
    summary = {"utterances": len(usable), "failed": len(errors), "decode_seconds": seconds,
               "beam_size": transcriber.beam_size, "lm_weight": transcriber.lm_weight if transcriber.lm else None,
               **{name: c.to_dict() for name, c in totals.items()}}
    if transcriber.frontend.modality == "audio":
        audio_seconds = frames * step / transcriber.config.features.sample_rate
        summary.update(audio_seconds=audio_seconds, real_time_factor=seconds / max(audio_seconds, 1e-9))
    else:
        summary.update(seconds_per_line=seconds / max(len(usable), 1))
    return summary


def format_summary(summary: dict, tokens: TokenSet) -> str:
    """The lines a person reads after an evaluation."""
    lines = []
    names = ("per", "per61") if tokens.kind == "phones" else ("cer", "wer")
    labels = {"per": "PER (39 folded phones)", "per61": "PER (61 phones)", "cer": "CER", "wer": "WER"}
    for name in (n for n in names if n in summary):
        c = summary[name]
        lines.append(f"{labels[name]:<24} {100 * c['rate']:6.2f}%  (S {c['substitutions']}, D {c['deletions']}, "
                     f"I {c['insertions']} of {c['reference_length']})")
    speed = (f"real-time factor {summary['real_time_factor']:.3f} ({summary['audio_seconds'] / 60:.1f} min of audio "
             f"in {summary['decode_seconds']:.1f} s)" if "real_time_factor" in summary
             else f"{summary['seconds_per_line'] * 1000:.0f} ms per line")
    lines.append(f"{summary['utterances']} utterances decoded, {summary['failed']} failed; {speed}")
    return "\n".join(lines)
