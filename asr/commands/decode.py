"""Transcribe files, or evaluate a checkpoint on a test set.

Examples:
  python decode.py speech.wav recordings/                       # shipped model, one line per file
  python decode.py --checkpoint checkpoints/RUN --beam 16 --output-format json speech.wav
  python decode.py --checkpoint checkpoints/handwriting-small --hotword Graves:2 --hotwords names.txt line.png
  python decode.py --checkpoint CHARS_MODEL --vocabulary words.txt --output-format ctm speech.wav
  python decode.py --raw-rate 16000 --raw-encoding PCM_16 goforward.raw
  python decode.py --checkpoint CKPT --test-set data/generated/synth-timit --split core
  python decode.py --checkpoint CKPT --test-set CORPUS --split test --limit 200 --calibration-plot reliability.png
  python decode.py --checkpoint UNI_CKPT --stream speech.wav --realtime        # partial results as it plays
  arecord -f S16_LE -r 16000 -c 1 -t raw | python decode.py --checkpoint UNI_CKPT --stream - --raw-rate 16000
  python decode.py --checkpoint CKPT --test-set CORPUS --split dev --lm phones.arpa --tune-lm
  python decode.py --checkpoint RUN --test-set CORPUS --split dev --lm words.arpa.gz --tune-lm --save-lm-settings

A model folder that stores a language model (RUN/decoding.yaml, written by --save-lm-settings)
is decoded with it, its beam size, weight and bonus by default; --no-lm turns it off, --lm
uses another one, and --beam, --lm-weight, --insertion-bonus override the stored values.

Character models: --hotword WORD[:BOOST] (repeatable) and --hotwords FILE (WORD[:BOOST] a line) bias
the beam search toward those words (BOOST: natural-log bonus per character of a completed hotword,
default 1); --vocabulary FILE (a word a line) emits only its words (and the hotwords). Either turns
on the beam search (beam 16 unless --beam says otherwise). JSON output has a "words" list (start,
end, confidence: the product of its characters' spike posteriors); CTM has one line per word.

--stream (unidirectional models): partial results as the audio arrives; on a terminal the line is
rewritten (the word in progress in brackets), into a pipe each word is printed once as it settles
(start, end, word, confidence, tab-separated); the last line is the transcript (best path).

A test set's rates are also given per group: per synthesized voice (DOC/SPKRINFO.TXT's voice
column), else per TIMIT dialect region (DR1..DR8), else per speaker; summary.json holds them
under "by_group" and each line of results.jsonl names its group.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from asr.cli import run
from asr.errors import UserError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", help="audio or image files, or folders of them")
    parser.add_argument("--checkpoint", help="checkpoint file or run folder (default: $ASR_CHECKPOINT, else "
                                             "the shipped English model, checkpoints/english)")
    parser.add_argument("--beam", type=int, help="beam size (default: the model folder's stored one with its "
                                                 "LM, else 1: best path)")
    parser.add_argument("--lm", help="ARPA n-gram (tokens, or words for character models), for shallow fusion "
                                     "(default: the one the model folder stores, if any)")
    parser.add_argument("--no-lm", action="store_true", help="decode without the model folder's stored LM")
    parser.add_argument("--lm-weight", type=float, help="weight of the LM's log probability (default: the "
                                                        "stored one, else 0.5)")
    parser.add_argument("--insertion-bonus", type=float, help="added per emitted token (default: the stored "
                                                              "one, else 0)")
    parser.add_argument("--hotword", action="append", default=[], metavar="WORD[:BOOST]",
                        help="bias the beam search toward WORD (character models; repeatable; BOOST: log bonus "
                             "per character, default 1)")
    parser.add_argument("--hotwords", metavar="FILE", help="hotwords from a file, WORD[:BOOST] a line")
    parser.add_argument("--vocabulary", metavar="FILE", help="emit only the words of FILE, one a line "
                                                             "(character models)")
    parser.add_argument("--output-format", choices=("text", "json", "ctm"), default="text",
                        help="text: FILE<TAB>transcript; json: one object per file with labels, score, "
                             "per-label times and words; ctm: one line per word (per label for phone models: "
                             "file channel start duration word conf)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--raw-rate", type=int, help="sample rate of headerless PCM inputs (.raw, .pcm)")
    parser.add_argument("--raw-encoding", default="PCM_16", help="sample format of headerless PCM (PCM_16, FLOAT, ...)")
    parser.add_argument("--chunk-seconds", type=float, default=30.0, help="longer audio is processed in chunks")
    live = parser.add_argument_group("streaming (unidirectional models)")
    live.add_argument("--stream", metavar="FILE|-", help="decode audio as it arrives: a file (played in chunks; "
                                                        "--realtime at its own pace) or '-', WAV or headerless PCM "
                                                        "(--raw-rate) on standard input, e.g. from arecord")
    live.add_argument("--realtime", action="store_true", help="with --stream FILE: deliver the chunks at the "
                                                             "pace of a recording")
    live.add_argument("--stream-chunk-ms", type=float, default=100.0, help="audio per chunk (default 100 ms)")
    test = parser.add_argument_group("evaluation")
    test.add_argument("--test-set", help="a corpus (TIMIT tree, LibriSpeech, manifest, IAM) to decode and score")
    test.add_argument("--split", help="its split (default: the config's data.test_split)")
    test.add_argument("--out", help="folder for results.jsonl, summary.json and the plot "
                                    "(default: out/decode/<checkpoint>-<split>)")
    test.add_argument("--batch-size", type=int, default=16)
    test.add_argument("--workers", type=int, default=0, help="feature-extraction processes")
    test.add_argument("--limit", type=int, help="score N utterances spread evenly over the split (every "
                                                             "voice or region represented)")
    test.add_argument("--calibration-plot", metavar="PNG", help="also write a reliability diagram of the word "
                                                               "confidences (character models) and report their "
                                                               "expected calibration error")
    test.add_argument("--plot-utterance", help="id of the utterance to plot (default: the first)")
    test.add_argument("--tune-lm", action="store_true", help="grid-search --lm's weight and insertion bonus on "
                                                            "--test-set (use the dev split) and print the best")
    test.add_argument("--save-lm-settings", action="store_true",
                      help="with --tune-lm: store the LM and the best weight, bonus and beam in the checkpoint's "
                           "folder (lm.arpa(.gz) + decoding.yaml), so that decoding uses them by default")
    test.add_argument("--tune-metric", choices=("per", "cer", "wer"),
                      help="with --tune-lm: the error rate to minimise (default: PER for phones, CER for "
                           "characters; wer suits a word LM)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse values that would fail deep inside, or silently do something else than asked."""
    if not (math.isfinite(args.chunk_seconds) and args.chunk_seconds > 0):
        raise UserError(f"--chunk-seconds {args.chunk_seconds:g}: give a positive number of seconds, e.g. 30")
    for flag, value in (("--lm-weight", args.lm_weight), ("--insertion-bonus", args.insertion_bonus)):
        if value is not None and not math.isfinite(value):
            raise UserError(f"{flag} {value:g}: give a finite number, e.g. 0.5")
    for flag, value, least in (("--beam", args.beam, 1), ("--batch-size", args.batch_size, 1),
                               ("--workers", args.workers, 0)):
        if value is not None and value < least:
            raise UserError(f"{flag} {value}: must be at least {least}")
    if args.no_lm and args.lm:
        raise UserError("--lm and --no-lm contradict each other: give one")
    for flag, path in (("--hotwords", args.hotwords), ("--vocabulary", args.vocabulary)):
        if path is not None and not Path(path).is_file():
            raise UserError(f"{flag} {path}: no such file; give a text file with one word a line")
    if args.tune_lm and (args.hotword or args.hotwords or args.vocabulary):
        raise UserError("--tune-lm tunes the LM without hotwords or a vocabulary (it would ignore them): drop "
                        "--hotword, --hotwords and --vocabulary when tuning, and add them when decoding")
    if not (math.isfinite(args.stream_chunk_ms) and args.stream_chunk_ms > 0):
        raise UserError(f"--stream-chunk-ms {args.stream_chunk_ms:g}: give a positive number of milliseconds")
    if args.stream and (args.inputs or args.test_set or args.tune_lm):
        raise UserError("--stream decodes one stream: give no other inputs, --test-set or --tune-lm with it")
    if args.realtime and not (args.stream and args.stream != "-"):
        raise UserError("--realtime paces --stream FILE; standard input arrives at its own pace")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be at least 1")
    if args.tune_metric and not args.tune_lm:
        raise UserError("--tune-metric chooses what --tune-lm minimises: add --tune-lm")
    if args.save_lm_settings and not args.tune_lm:
        raise UserError("--save-lm-settings stores what --tune-lm finds: add --tune-lm (and --test-set with its "
                        "dev split)")


def make_transcriber(args: argparse.Namespace):
    from asr.audio import RawFormat
    from asr.distributed import choose_device
    from asr.transcribe import Transcriber, parse_hotword, read_word_list

    raw = RawFormat(args.raw_rate, args.raw_encoding) if args.raw_rate else None
    # Flags given win; the others come from the model folder's stored settings, if it has an LM and
    # --lm names none, else from the defaults below.
    given = {"beam_size": args.beam, "lm_weight": args.lm_weight, "insertion_bonus": args.insertion_bonus}
    options = {name: value for name, value in given.items() if value is not None}
    if args.lm and args.lm_weight is None:
        options["lm_weight"] = 0.5
    hotwords = read_word_list(args.hotwords, boosts=True) if args.hotwords else {}
    for text in args.hotword:
        hotwords.update(parse_hotword(text))
    vocabulary = list(read_word_list(args.vocabulary)) if args.vocabulary else None
    if vocabulary == []:
        raise UserError(f"--vocabulary {args.vocabulary}: the file holds no words; give one word a line")
    device = choose_device(args.device, f"--device {args.device}", "--device cpu")
    transcriber = Transcriber.from_checkpoint(args.checkpoint, lm_path=args.lm, use_lm=not args.no_lm, raw=raw,
                                              device=device, chunk_seconds=args.chunk_seconds,
                                              hotwords=hotwords, vocabulary=vocabulary, **options)
    if transcriber.bias is not None and args.beam is None and transcriber.beam_size <= 1:
        transcriber.beam_size = 16  # biasing needs hypotheses to choose among
    return transcriber


def describe_decoder(transcriber) -> str:
    """The decoder as a person reads it: best path, or the beam and the LM with its weights."""
    biased = " + hotwords/vocabulary" if transcriber.bias is not None else ""
    if transcriber.lm is None:
        return (f"beam {transcriber.beam_size}" if transcriber.beam_size > 1 else "best path") + biased
    return (f"beam {transcriber.beam_size} + LM {transcriber.lm_path} (weight {transcriber.lm_weight:g}, "
            f"insertion bonus {transcriber.insertion_bonus:g}){biased}")


def input_files(inputs: list[str], suffixes: frozenset[str]) -> list[Path]:
    """The files named, and the files inside the folders named that have one of `suffixes` (sorted)."""
    files = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
        else:
            files.append(path)
    return files


def format_result(path: str, result, output_format: str) -> str:
    if output_format == "text":
        return f"{path}\t{result.text}"
    if output_format == "json":
        return result.to_json(file=path)
    utterance = Path(path).stem
    return "\n".join(f"{utterance} 1 {w.start:.3f} {w.end - w.start:.3f} {w.word} {w.confidence:.3f}"
                     for w in result.words)


def transcribe(args: argparse.Namespace) -> int:
    transcriber = make_transcriber(args)
    suffixes = transcriber.frontend.suffixes
    files = input_files(args.inputs, suffixes)
    if not files:
        raise UserError(f"no {transcriber.frontend.modality} files ({', '.join(sorted(suffixes))}) found in "
                        f"{' '.join(args.inputs)}")
    failed = 0
    for path, result in transcriber.transcribe_files(files):
        if isinstance(result, Exception):
            failed += 1
            print(f"error: {result}", file=sys.stderr, flush=True)
        else:
            text = format_result(path, result, args.output_format)
            if text:
                print(text, flush=True)
    if failed:
        print(f"{failed} of {len(files)} file(s) could not be transcribed", file=sys.stderr)
    return 1 if failed else 0


def stream(args: argparse.Namespace) -> int:
    """--stream: partial results as the audio arrives, then the transcript. On a terminal the current
    line is rewritten (settled text, then the tentative word in brackets); into a pipe or file each
    word is printed once, as it settles (start, end, word, confidence, tab-separated)."""
    import torch

    from asr.streaming import file_chunks, stdin_chunks

    # A chunk's products are small: one thread ran them ~9x faster than two on this project's busy
    # 2-core machine (an LSTM layer on 7 frames: 13 ms against 118 ms), where threads wait for each other.
    torch.set_num_threads(1)
    transcriber = make_transcriber(args)
    transcriber.check_streamable()
    rate = transcriber.config.features.sample_rate
    if args.stream == "-":
        chunks = stdin_chunks(sys.stdin.buffer, rate, args.stream_chunk_ms, args.raw_rate, args.raw_encoding)
    else:
        chunks = file_chunks(transcriber.frontend.waveform(args.stream), rate, args.stream_chunk_ms, args.realtime)
    terminal = sys.stdout.isatty()
    for partial in transcriber.stream(chunks):
        if terminal:
            tentative = f"[{partial.tentative}]" if partial.tentative else ""
            line = " ".join(part for part in (partial.final, tentative) if part)
            print(f"\r\033[K{line}", end="" if not partial.done else "\n", flush=True)
        elif not partial.done:
            for word in partial.new_words:
                print(f"{word.start:.3f}\t{word.end:.3f}\t{word.word}\t{word.confidence:.3f}", flush=True)
        if partial.done and not terminal:
            for word in partial.new_words:
                print(f"{word.start:.3f}\t{word.end:.3f}\t{word.word}\t{word.confidence:.3f}", flush=True)
            print(partial.transcript.text, flush=True)
    return 0


def test_split(args: argparse.Namespace, transcriber):
    from asr.corpora import open_corpus

    corpus = open_corpus(args.test_set)
    split = args.split or transcriber.config.data.test_split
    if split not in corpus.splits:
        raise UserError(f"{args.test_set}: no split {split!r}; it has {', '.join(corpus.splits)}")
    utterances = corpus.read(split)
    if args.limit and args.limit < len(utterances):  # evenly spread: a split is sorted by speaker
        utterances = [utterances[i * len(utterances) // args.limit] for i in range(args.limit)]
    return corpus, split, utterances


def output_folder(args: argparse.Namespace, split: str) -> Path:
    if args.out:
        return Path(args.out)
    name = Path(args.checkpoint).stem if args.checkpoint and Path(args.checkpoint).is_file() else \
        Path(args.checkpoint or "english").name
    return Path("out") / "decode" / f"{name}-{Path(args.test_set).name}-{split}"


def evaluate(args: argparse.Namespace) -> int:
    from asr.evaluation import evaluate as run_evaluation
    from asr.evaluation import format_summary

    transcriber = make_transcriber(args)
    corpus, split, utterances = test_split(args, transcriber)
    out = output_folder(args, split)
    print(f"decoding {len(utterances)} utterances of {args.test_set} ({split}) with {describe_decoder(transcriber)}")
    summary = run_evaluation(transcriber, utterances, out, args.batch_size, args.workers, args.plot_utterance,
                             log=lambda m: print(m, file=sys.stderr))
    print(format_summary(summary, transcriber.tokens))
    print(f"per-utterance results: {out / 'results.jsonl'}; summary: {out / 'summary.json'}"
          + (f"; plot: {summary['plot']}" if "plot" in summary else ""))
    if args.calibration_plot:
        from asr.atomic import write_text
        from asr.evaluation import calibration
        from asr.transcribe import json_text

        result = calibration(transcriber, utterances, args.calibration_plot)
        write_text(out / "calibration.json", json_text(result, indent=2) + "\n")
        print(f"word confidence: expected calibration error {result['ece']:.3f} over {result['words']} words "
              f"({100 * result['accuracy']:.1f} % right); reliability diagram: {args.calibration_plot}; bins: "
              f"{out / 'calibration.json'}")
    return 1 if summary["failed"] else 0


def tune_lm(args: argparse.Namespace) -> int:
    from asr.evaluation import tune_language_model

    fix = "give --lm ARPA (or a checkpoint whose folder stores one) and --test-set CORPUS --split dev"
    if not args.test_set or args.no_lm:
        raise UserError(f"--tune-lm tunes a language model on a test set: {fix}")
    transcriber = make_transcriber(args)
    if transcriber.lm is None:
        raise UserError(f"--tune-lm: no language model to tune; {fix}")
    corpus, split, utterances = test_split(args, transcriber)
    beam = args.beam or max(transcriber.beam_size, 8)
    save_to = transcriber.model_folder if args.save_lm_settings else None
    weight, bonus, table = tune_language_model(transcriber, utterances, beam, args.batch_size, args.workers,
                                               log=lambda m: print(m, file=sys.stderr), save_to=save_to,
                                               metric=args.tune_metric)
    print(f"lm_weight  insertion_bonus  {(args.tune_metric or 'error').upper()}")
    for row in table:
        print(f"{row[0]:9.2f}  {row[1]:15.2f}  {100 * row[2]:5.2f}%")
    print(f"best on {split}: --lm {transcriber.lm_path} --lm-weight {weight:g} --insertion-bonus {bonus:g} "
          f"--beam {beam}")
    if save_to is not None:
        print(f"stored in {save_to} (decoding.yaml): decoding this checkpoint now uses this LM and these "
              f"settings by default; --no-lm turns it off")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_args(args)
    if args.tune_lm:
        return tune_lm(args)
    if args.stream:
        return stream(args)
    if args.test_set:
        return evaluate(args)
    if not args.inputs:
        raise UserError("nothing to do: give audio/image files or folders, or --test-set CORPUS")
    return transcribe(args)


def cli() -> None:
    """The `asr-decode` command: `main` with one-line errors and exit codes."""
    run(main)


if __name__ == "__main__":
    cli()
