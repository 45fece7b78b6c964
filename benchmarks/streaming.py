"""Streaming latency: how much audio after a word's end the stream needs before the word settles.

Each test utterance is streamed (`Transcriber.stream`) in chunks of 100, 200 and 500 ms,
as fast as the machine computes (the audio-time latency does not depend on the pace).
A word settles when the space after it is emitted (`asr.streaming.GreedySettler`); its
latency is the audio received by then minus the word's end in the final alignment
(both in audio time, so chunking adds up to one chunk of waiting). The last word of an
utterance settles only when the stream ends, so it is counted apart. Printed per chunk
size: median and 90th-percentile settle latency, the compute time per chunk, the
real-time factor (compute seconds per audio second), and whether every stream's final
transcript equalled whole-file best-path decoding.

Run: python benchmarks/streaming.py --checkpoint /root/runs/english-uni-gpu/best.pt \
        --data /root/corpora/english-v2 --split test --limit 100
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from tqdm import tqdm

from asr.corpora import open_corpus
from asr.streaming import file_chunks
from asr.transcribe import Transcriber


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def stream_one(transcriber: Transcriber, waveform: torch.Tensor, chunk_ms: float) -> dict:
    """Latencies (s of audio) of the words settled inside the stream, compute seconds per chunk, and the result."""
    rate = transcriber.config.features.sample_rate
    latencies, computes, settled = [], [], []
    started = time.perf_counter()
    for partial in transcriber.stream(file_chunks(waveform, rate, chunk_ms)):
        now = time.perf_counter()
        computes.append(now - started)
        if not partial.done:
            settled += [(word, partial.seconds) for word in partial.new_words]
        last = partial
        started = time.perf_counter()
    for word, seconds in settled:  # the stream's words are the final alignment's (tests/test_streaming.py)
        latencies.append(seconds - word.end)
    return {"latencies": latencies, "computes": computes, "text": last.transcript.text,
            "at_end": len(last.new_words)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a unidirectional model")
    parser.add_argument("--data", required=True, help="a corpus")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=100, help="utterances, spread evenly over the split")
    parser.add_argument("--chunk-ms", type=float, nargs="+", default=[100, 200, 500])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a chunk's small products "
                                                               "ran 9x faster on one thread than on two busy cores)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    transcriber = Transcriber.from_checkpoint(args.checkpoint, use_lm=False)
    utterances = open_corpus(args.data).read(args.split)
    n = min(args.limit, len(utterances))
    utterances = [utterances[i * len(utterances) // n] for i in range(n)]
    waveforms = [transcriber.frontend.waveform(u.path) for u in utterances]
    audio = sum(len(w) for w in waveforms) / transcriber.config.features.sample_rate
    whole = [transcriber.transcribe(w).text for w in tqdm(waveforms, desc="whole-file", leave=False)]
    print(f"{n} utterances, {audio:.0f} s of audio; {args.checkpoint}; {torch.get_num_threads()} threads")
    print("chunk    words  median   p90     last words  compute/chunk  RTF    stream == whole-file")
    for chunk_ms in args.chunk_ms:
        latencies, computes, same, at_end = [], [], 0, 0
        for waveform, expected in tqdm(list(zip(waveforms, whole)), desc=f"{chunk_ms:g} ms", leave=False):
            result = stream_one(transcriber, waveform, chunk_ms)
            latencies += result["latencies"]
            computes += result["computes"]
            same += result["text"] == expected
            at_end += result["at_end"]
        print(f"{chunk_ms:4g} ms  {len(latencies):5d}  {1000 * statistics.median(latencies):4.0f} ms  "
              f"{1000 * percentile(latencies, 0.9):4.0f} ms  {at_end:10d}  "
              f"{1000 * statistics.mean(computes):9.1f} ms  {sum(computes) / audio:.3f}  {same}/{n}")


if __name__ == "__main__":
    main()
