"""Scoring and evaluating: decoded labels against references, the way each token kind is reported.

Phone models: PER after folding to 39 classes (the number Graves et al. 2013
report) and the unfolded 61-phone PER. Character models: CER and WER. Rates are
corpus-level (edits over reference length). `evaluate` decodes a whole test set
in length-sorted batches and writes per-utterance results, a summary and a plot.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
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
    totals: dict[str, ErrorCounts] = {}
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        for name, counts in utterance_counts(tokens, reference, hypothesis).items():
            totals[name] = totals.get(name, ErrorCounts()) + counts
    return totals


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
    references = {i: reference_text(tokens, utterances[i]) for i in usable}
    results = []
    for i in usable:
        counts = utterance_counts(tokens, references[i], hypotheses[i])
        results.append({"id": utterances[i].id, "path": str(utterances[i].path), "reference": references[i],
                        "hypothesis": tokens.to_text(hypotheses[i]),
                        **{name: c.to_dict() for name, c in counts.items()}})
    totals = corpus_counts(tokens, [references[i] for i in usable], [hypotheses[i] for i in usable])
    summary = summarise(transcriber, sum(len(features[i]) for i in usable), len(usable), totals, seconds, errors)
    write_jsonl(results, out / "results.jsonl")
    write_text(out / "summary.json", json_text(summary, indent=2) + "\n")
    if wanted is not None:
        summary["plot"] = str(plot_utterance(transcriber, utterances[wanted], features[wanted], kept[wanted], out))
        write_text(out / "summary.json", json_text(summary, indent=2) + "\n")
    return summary


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
                        **grid) -> tuple[float, float, list]:
    """Grid-search the transcriber's LM weight and insertion bonus for the lowest PER/CER on `utterances`.

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
    weight, bonus, table = _tune(transcriber, utterances, beam_size, batch_size, num_workers, log, grid)
    if save_to is not None:
        path = save_decoding_settings(save_to, transcriber.lm_path, weight, bonus, beam_size)
        log(f"stored the LM and its settings: {path}")
    return weight, bonus, table


def _tune(transcriber, utterances: Sequence[Utterance], beam_size: int, batch_size: int, num_workers: int, log,
          grid: dict) -> tuple[float, float, list]:
    """`tune_fusion` on the posteriors of `utterances`, scored by the model's primary error rate."""
    from asr.fusion import tune_fusion  # noqa: PLC0415

    tokens, metric = transcriber.tokens, primary_metric(transcriber.tokens)
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


def summarise(transcriber, frames: int, utterances: int, totals: dict, seconds: float, errors: list) -> dict:
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
