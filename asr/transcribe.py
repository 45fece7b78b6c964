"""The public high-level API: a checkpoint in, transcripts with timings out.

    from asr.transcribe import Transcriber
    transcriber = Transcriber.from_checkpoint("checkpoints/synth-small")
    result = transcriber.transcribe("speech.wav")     # or a 1-D waveform tensor
    print(result.text, result.segments[0])

Audio longer than ``chunk_seconds`` is read, featurised and run through the
network a chunk at a time, each chunk with ``context_seconds`` of audio on both
sides that the network sees but whose outputs are dropped (the front end,
`asr.frontend`, cuts the input into these pieces; a line image is one); the label posteriors
are decoded in segments cut where the blank is most probable, so memory stays
bounded whatever the length of the file. A file shorter than one chunk goes
through in one piece.

Timings come from the CTC alignment: the decoded labels are force-aligned to
the posteriors (`torchaudio.functional.forced_align`, the Viterbi path of
Graves et al. 2006 restricted to that labelling); CTC emits each label as a
spike, so a label's segment runs from the middle of the blank gap before its
spike to the middle of the gap after it.

Words (`Transcript.words`): for a character model, the runs of labels between
spaces, each from its first label's start to its last label's end, with the
*product* of its labels' spike posteriors as its confidence: the probability
that every character is right, were the frames independent (the "prod"
aggregation of per-token confidences in NeMo, Laptev & Ginsburg 2023,
arXiv:2212.08703, who also offer "min" and "mean"). Measured on the held-out
writers of synth-iam with checkpoints/handwriting-small (best path, 1960 words,
37% right), the product is the best calibrated of the three: expected calibration
error 0.057 (min 0.218, mean 0.397; `asr.metrics.expected_calibration_error`,
10 bins) and it ranks right above wrong words best (AUROC 0.863; min 0.849,
mean 0.847). For a phone model the words are its labels, one per segment.

Hotwords and a closed vocabulary (character models): ``Transcriber(...,
hotwords={word: boost}, vocabulary=words)`` decodes with `asr.decoding.WordBias`
in the prefix beam search. Each blank-cut segment is decoded on its own, so a
word is biased (or checked) within a segment; the cuts fall on likely blanks,
rarely inside a word.

A model folder may store a language model with its tuned fusion weights
(``lm.arpa(.gz)`` + ``decoding.yaml``, written by ``decode.py --tune-lm
--save-lm-settings``); `Transcriber.from_checkpoint` decodes with it unless told
``use_lm=False``, so the model's users get the decoding its numbers were measured with.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from asr.audio import RawFormat
from asr.checkpoint import load_model, resolve
from asr.dataset import ctc_min_frames
from asr.decoding import WordBias, greedy, prefix_beam_search
from asr.errors import UserError
from asr.frontend import Piece, frontend_for
from asr.fusion import read_decoding_settings
from asr.lm import NGramTokenScorer, NGramWordScorer, load_arpa
from asr.pretrained import default_checkpoint
from asr.streaming import GreedySettler, Partial, StreamingFeatures
from asr.tokens import TokenSet


@dataclass
class Segment:
    """One decoded label with its time span (seconds; for images, pixel columns)."""

    label: str
    start: float
    end: float
    confidence: float  # posterior of the label at its spike


@dataclass
class Word:
    """One decoded word (character models; a phone model's words are its labels) with its time span."""

    word: str
    start: float
    end: float
    confidence: float  # the product of its labels' spike posteriors


def words_of(segments: list[Segment], kind: str) -> list[Word]:
    """The words of per-label `segments`: runs of non-space labels (chars), or the labels themselves (phones)."""
    if kind != "chars":
        return [Word(s.label, s.start, s.end, s.confidence) for s in segments]
    words, run = [], []
    for segment in [*segments, None]:
        if segment is not None and not segment.label.isspace():
            run.append(segment)
        elif run:
            words.append(Word("".join(s.label for s in run), run[0].start, run[-1].end,
                              math.prod(s.confidence for s in run)))
            run = []
    return words


@dataclass
class Transcript:
    text: str
    labels: list[str]
    score: float  # log probability of the labelling (fused with the LM if one is used)
    segments: list[Segment] = field(default_factory=list)
    duration: float = 0.0
    unit: str = "s"  # "s" for audio, "columns" for images
    source: str = ""
    words: list[Word] = field(default_factory=list)  # see `words_of`

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json_dict(self, **extra) -> dict:
        """The record `to_json` writes, as plain data (`extra` fields first; non-finite numbers None):
        ``decode.py --output-format json`` prints it per file, the service (`asr.serve`) returns it."""
        return finite({**extra, **self.to_dict()})

    def to_json(self, **extra) -> str:
        """The transcript (and `extra` fields first) as one line of strict JSON."""
        return json_text(self.to_json_dict(**extra))


def language_model(path: str | os.PathLike, tokens: TokenSet):
    """An ARPA model as a beam-search scorer: over tokens if its words are the model's
    tokens (a phone bigram, a character n-gram), else over words (characters models only)."""
    lm = load_arpa(path)
    words = set(lm.vocabulary) - {"<s>", "</s>", "<unk>"}
    symbols = set(tokens.symbols[1:]) | {"<space>"}
    if words and len(words & symbols) >= 0.5 * len(words):
        return NGramTokenScorer(lm, tokens.symbols)
    if tokens.kind != "chars":
        raise UserError(f"{path}: a word-level language model needs a character model; this model emits "
                        f"{tokens.kind}. Build a {tokens.kind} n-gram: python -m asr.lm --help")
    return NGramWordScorer(lm, tokens.symbols)


def chosen_language_model(folder: Path, lm_path, use_lm: bool, options: dict) -> tuple[Path | None, dict]:
    """The ARPA file to decode with and the options to decode with: an explicit `lm_path` as given;
    else the model folder's stored LM (if `use_lm`) with its stored settings under `options`."""
    if not use_lm:
        return None, options
    if lm_path:
        return Path(lm_path), options
    stored = read_decoding_settings(folder)
    if stored is None:
        return None, options
    defaults = {"beam_size": stored.beam_size, "lm_weight": stored.lm_weight,
                "insertion_bonus": stored.insertion_bonus}
    return folder / stored.lm, {**defaults, **options}


class Transcriber:
    """Front end, model and decoder of one checkpoint; `transcribe` a file or waveform."""

    def __init__(self, model, config, tokens: TokenSet, *, device: str = "cpu", beam_size: int = 1,
                 lm=None, lm_weight: float = 0.0, insertion_bonus: float = 0.0, chunk_seconds: float = 30.0,
                 context_seconds: float = 2.0, raw: RawFormat | None = None,
                 hotwords: dict[str, float] | None = None, vocabulary: Iterable[str] | None = None):
        # Where the model and its LM came from (set by from_checkpoint): tuning stores its result there.
        self.model_folder: Path | None = None
        self.lm_path: Path | None = None
        self.device = torch.device(device)
        self.model, self.config, self.tokens = model.to(self.device).eval(), config, tokens
        self.frontend = frontend_for(config.features, raw=raw)
        self.beam_size, self.lm, self.lm_weight, self.insertion_bonus = beam_size, lm, lm_weight, insertion_bonus
        self.chunk_seconds, self.context_seconds = chunk_seconds, context_seconds
        self.bias = word_bias(tokens, hotwords, vocabulary)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, *,
                        lm_path: str | os.PathLike | Literal[False] | None = None, use_lm: bool = True, **options):
        """A transcriber for the checkpoint (file or run folder; default: `asr.pretrained.default_checkpoint`,
        $ASR_CHECKPOINT or the shipped model).

        The language model: `lm_path` (an ARPA file) if given; else the one the checkpoint's folder
        stores (``decoding.yaml``, `asr.fusion.read_decoding_settings`), with its tuned beam size,
        LM weight and insertion bonus, which `options` given here override. ``use_lm=False`` or
        ``lm_path=False``: no LM at all.
        """
        checkpoint = resolve(path or default_checkpoint())
        model, config, tokens = load_model(checkpoint)
        lm_file, options = chosen_language_model(checkpoint.parent, lm_path, use_lm and lm_path is not False, options)
        transcriber = cls(model, config, tokens, lm=language_model(lm_file, tokens) if lm_file else None, **options)
        transcriber.model_folder, transcriber.lm_path = checkpoint.parent, lm_file
        return transcriber

    # ---- the network ----------------------------------------------------------------------

    @torch.no_grad()
    def log_probs(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Label log posteriors ``(B, T, V)`` (on the CPU) and lengths for a batch of feature sequences."""
        lengths = torch.tensor([len(f) for f in features])
        padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True).to(self.device)
        return self.model(padded, lengths).float().cpu(), lengths

    # ---- decoding ---------------------------------------------------------------------------

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[tuple[list[int], float]]:
        """Label ids and score per utterance: best path (beam 1) or prefix beam search."""
        if self.beam_size <= 1 and self.lm is None and self.bias is None:
            return [(h.tokens, h.score) for h in greedy(log_probs, lengths)]
        found = prefix_beam_search(log_probs, lengths, beam_size=max(self.beam_size, 1), lm=self.lm,
                                   lm_weight=self.lm_weight, insertion_bonus=self.insertion_bonus, nbest=1,
                                   bias=self.bias)
        return [(h[0].tokens, h[0].score) if h else ([], float("-inf")) for h in found]

    def segments(self, log_probs: torch.Tensor, ids: list[int], offset: int = 0) -> list[Segment]:
        """Time spans of `ids` in posteriors ``(T, V)`` whose first frame is frame `offset` of the file."""
        if not ids:
            return []
        alignment, scores = AF.forced_align(log_probs[None], torch.tensor([ids], dtype=torch.int32), blank=0)
        spans = AF.merge_tokens(alignment[0], scores[0].exp())
        edges = [spans[0].start] + [(a.end + b.start) / 2 for a, b in zip(spans, spans[1:])] + [spans[-1].end]
        edge = self.frontend.frame_edge
        return [Segment(self.tokens.symbols[span.token], edge(offset + start), edge(offset + end), float(span.score))
                for span, start, end in zip(spans, edges, edges[1:])]

    def finish(self, ids: list[int], score: float, segments: list[Segment], duration: float, source: str):
        labels = self.tokens.decode(ids)
        return Transcript(self.tokens.to_text(ids), labels, score, segments, duration, self.frontend.unit, source,
                          words_of(segments, self.tokens.kind))

    # ---- files and waveforms ----------------------------------------------------------------

    def transcribe(self, source: str | os.PathLike | torch.Tensor, sample_rate: int | None = None) -> Transcript:
        """Transcribe a file (any format the audio or image front end reads) or a 1-D waveform."""
        return self._transcribe_stream(*self.posterior_stream(source, sample_rate))

    def align(self, source: str | os.PathLike | torch.Tensor, transcript: str,
              sample_rate: int | None = None) -> Transcript:
        """Forced alignment: where each label of a known `transcript` lies in `source`.

        The transcript is in the model's own terms (phones separated by spaces for a
        phone model, text for a character model). The score is log P(transcript | input)
        over all CTC alignments; the segments follow the best one.
        """
        chunks, duration, name = self.posterior_stream(source, sample_rate)
        ids = self.tokens.encode_text(transcript, source=name)
        log_probs = torch.cat(list(chunks))
        if not ids:
            raise UserError(f"{name}: the transcript to align is empty; give the labels it should hold")
        if len(log_probs) < ctc_min_frames(ids):
            raise UserError(f"{name}: {len(log_probs)} frames cannot hold the {len(ids)} labels of the "
                            f"transcript; give the transcript that belongs to this input")
        score = -F.ctc_loss(log_probs[:, None], torch.tensor([ids]), torch.tensor([len(log_probs)]),
                            torch.tensor([len(ids)]), reduction="sum")
        return self.finish(ids, float(score), self.segments(log_probs, ids), duration, name)

    def posterior_stream(self, source, sample_rate: int | None = None) -> tuple[Iterator[torch.Tensor], float, str]:
        """The input's label posteriors as a stream of ``(t, V)`` chunks, its duration and its name."""
        if torch.is_tensor(source):
            features = self.frontend.from_waveform(source, sample_rate)
            duration = len(source) / (sample_rate or self.config.features.sample_rate)
            return iter([self.log_probs([features])[0][0]]), duration, "<waveform>"
        pieces, duration = self.frontend.pieces(source, self.chunk_seconds, self.context_seconds)
        return self._piece_posteriors(pieces), duration, str(source)

    def _piece_posteriors(self, pieces: Iterable[Piece]) -> Iterator[torch.Tensor]:
        for piece in pieces:
            yield self.log_probs([piece.features])[0][0][piece.keep]

    def _transcribe_stream(self, chunks: Iterable[torch.Tensor], duration: float, source: str) -> Transcript:
        ids, score, segments = [], 0.0, []
        for offset, posteriors in blank_cut_segments(chunks, self.chunk_frames):
            (segment_ids, segment_score), = self.decode(posteriors[None], torch.tensor([len(posteriors)]))
            ids += segment_ids
            score += segment_score
            segments += self.segments(posteriors, segment_ids, offset)
        return self.finish(ids, score, segments, duration, source)

    @property
    def chunk_frames(self) -> int:
        """Frames decoded at a time: about `chunk_seconds` of audio; a line image in one piece."""
        return self.frontend.chunk_frames(self.chunk_seconds)

    # ---- streaming ----------------------------------------------------------------------------

    def check_streamable(self) -> None:
        """Refuse, in one line, a model that cannot decode a stream as it arrives."""
        model = self.model
        if self.frontend.not_streamable:
            raise UserError(self.frontend.not_streamable)
        if model.config.bidirectional:
            raise UserError("streaming needs a unidirectional model (model.bidirectional: false): this one is "
                            "bidirectional, and its reverse direction needs the end of the audio first")
        if model.normalizer.mode == "utterance":
            raise UserError("streaming needs global (training-set) normalisation: this model normalises by "
                            "each utterance's own statistics, known only at its end")

    def stream(self, chunks: Iterable[torch.Tensor]) -> Iterator[Partial]:
        """Decode audio as it arrives: `chunks` are 1-D float tensors at the model's sample rate,
        any sizes. Yields a `asr.streaming.Partial` per chunk (settled text, the tentative rest and
        the words that settled) and a last one (``done``) with the whole `Transcript`.

        Features, network state and best-path decoding all run incrementally, so each chunk
        costs only its own frames; the posteriors, and the transcript, are those of decoding the
        whole recording at once (best path, whatever ``beam_size`` says). A recording longer than
        ``chunk_seconds`` is decoded whole in pieces with ``context_seconds`` of context, which a
        unidirectional model sees less of than the stream's whole past, so there the two may differ
        slightly. The posteriors are kept (a few kB per second of audio) for the last item's transcript."""
        self.check_streamable()
        features = StreamingFeatures(self.frontend.extractor)
        separators = {self.tokens.symbols.index(" ")} if self.tokens.kind == "chars" and " " in \
            self.tokens.symbols else None
        settler = GreedySettler(self.tokens.symbols, self.frontend.frame_edge, separators)
        state, posteriors, words, samples = None, [], [], 0
        rate = self.config.features.sample_rate

        def step(frames: torch.Tensor, done: bool) -> Partial:
            nonlocal state
            if len(frames):
                log_probs, state = self.model.forward_state(frames[None].to(self.device), state)
                posteriors.append(log_probs[0].cpu())
            new = settler.push(posteriors[-1] if len(frames) else torch.zeros(0, len(self.tokens.symbols)))
            new += settler.finish() if done else []
            words.extend(new)
            return Partial(" ".join(w.word for w in words), settler.tentative(), new, samples / rate, done,
                           words=list(words))

        for chunk in chunks:
            samples += len(chunk)
            yield step(features.push(chunk), done=False)
        last = step(features.finish(), done=True)
        log_probs = torch.cat(posteriors) if posteriors else torch.zeros(0, len(self.tokens.symbols))
        ids, score = settler.ids, float(log_probs.max(dim=-1).values.sum(dtype=torch.float64))  # as `greedy`'s
        last.transcript = self.finish(ids, score, self.segments(log_probs, ids), samples / rate, "<stream>")
        yield last

    def transcribe_files(self, paths: Iterable[str | os.PathLike]) -> Iterator[tuple[str, Transcript | UserError]]:
        """(path, transcript) per file; a file that cannot be read gives its `UserError` instead."""
        for path in paths:
            try:
                yield str(path), self.transcribe(path)
            except UserError as error:
                yield str(path), error


def word_bias(tokens: TokenSet, hotwords: dict[str, float] | None, vocabulary: Iterable[str] | None,
              source: str = "hotwords") -> WordBias | None:
    """The `WordBias` for a model's tokens (None when there is nothing to bias); words are normalised
    as the model's transcripts are (lower case for speech characters)."""
    if not hotwords and vocabulary is None:
        return None
    if tokens.kind != "chars" or " " not in tokens.symbols:
        raise UserError(f"{source}: hotwords and a vocabulary need a character model with a space token; this "
                        f"model emits {tokens.kind} ({tokens.describe()}). Decode without them")
    def spell(word: str) -> str:
        return "".join(tokens.labels(word)).strip()

    normalised = {}
    for word, boost in (hotwords or {}).items():
        if not math.isfinite(boost):
            raise UserError(f"{source}: hotword {word!r} has boost {boost}; give a finite number, e.g. 1.0")
        missing, spelt = tokens.unwritable(word), spell(word)
        if missing or not spelt or " " in spelt:
            problem = f"the model cannot write {''.join(missing)!r}" if missing else "a hotword is one word"
            raise UserError(f"{source}: hotword {word!r}: {problem}; give one word in the model's characters")
        normalised[spelt] = boost
    words = None if vocabulary is None else {spell(word) for word in vocabulary} - {""}
    return WordBias(tokens.symbols, hotwords=normalised, vocabulary=words)


def read_word_list(path: str | os.PathLike, boosts: bool = False, default_boost: float = 1.0) -> dict[str, float]:
    """A word list file, one word per line (blank lines and lines starting with # skipped); with `boosts`
    each line may be WORD:BOOST. Returns {word: boost} (the boost is `default_boost` where not given)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read the word list ({error}); give a UTF-8 text file, one word a line") \
            from None
    return parse_word_list(lines, str(path), boosts, default_boost)


def parse_word_list(lines: Iterable[str], source: str, boosts: bool = False,
                    default_boost: float = 1.0) -> dict[str, float]:
    """The lines of a word list (see `read_word_list`; also a service's form field) as {word: boost};
    errors name `source` and the line number."""
    words = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words.update(parse_hotword(line, default_boost, f"{source}:{number}") if boosts else {line: default_boost})
    return words


def parse_hotword(text: str, default_boost: float = 1.0, source: str = "--hotword") -> dict[str, float]:
    """``WORD`` or ``WORD:BOOST`` as {word: boost}."""
    word, colon, boost = text.rpartition(":") if ":" in text else (text, "", "")
    try:
        value = float(boost) if colon else default_boost
    except ValueError:
        raise UserError(f"{source}: {text!r}: the boost after ':' must be a number, e.g. {word}:2.0") from None
    if not word.strip():
        raise UserError(f"{source}: {text!r}: no word; give WORD or WORD:BOOST")
    return {word.strip(): value}


def blank_cut_segments(chunks: Iterable[torch.Tensor], length: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Regroup a stream of posteriors ``(t, V)`` into segments of about `length` frames.

    Each segment ends at the frame of the highest blank posterior within a
    quarter of `length` of its nominal end, where no label is being emitted, so
    decoding segments apart loses (almost) nothing. At most about two segments
    are held at once. Yields (first frame of the segment, posteriors).
    """
    buffer, offset = None, 0
    for chunk in chunks:
        buffer = chunk if buffer is None else torch.cat([buffer, chunk])
        while len(buffer) >= 2 * length:
            window = buffer[length - length // 4: length + length // 4]
            cut = length - length // 4 + int(window[:, 0].argmax()) + 1
            yield offset, buffer[:cut]
            buffer, offset = buffer[cut:], offset + cut
    if buffer is not None and len(buffer):
        yield offset, buffer


def best_paths(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Label ids of the best path per utterance (`asr.decoding.greedy`)."""
    return [h.tokens for h in greedy(log_probs, lengths)]


def finite(value):
    """`value` with every non-finite float (NaN, +-inf) inside it replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def json_text(value, **options) -> str:
    """Strict JSON (no NaN or Infinity, which JSON lacks and strict readers refuse): non-finite numbers
    become null."""
    return json.dumps(finite(value), allow_nan=False, **options)
