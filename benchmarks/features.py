"""Feature extraction speed: our batched extractor against torchaudio's Kaldi fbank, looped.

A batch of 16 utterances of 3 s (real recordings from pocketsphinx-testdata when
installed, else noise) goes through

    baseline   torchaudio.compliance.kaldi.fbank, one utterance at a time (41 values)
    fbank      FeatureExtractor, the same 40 mel + energy in one batched call (41)
    graves2013 FeatureExtractor, plus deltas and delta-deltas (123)

interleaved, several repeats; the median time of each is reported as a
real-time factor (seconds of audio per second of compute) and as a speed-up
over the baseline measured in the same run.

    python benchmarks/features.py [--device cuda] [--repeats 15] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torchaudio.compliance.kaldi as kaldi

from asr.features import FeatureConfig, FeatureExtractor

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def batch_of_utterances(count: int, seconds: float, rate: int) -> torch.Tensor:
    samples = int(seconds * rate)
    recordings = sorted(LIBRIVOX.glob("*.wav"))
    if not recordings:
        return 0.1 * torch.randn(count, samples)
    from asr.audio import load_audio
    speech = torch.cat([load_audio(path, rate) for path in recordings])
    starts = torch.linspace(0, len(speech) - samples, count).long()  # different stretches
    return torch.stack([speech[start:start + samples] for start in starts])


def timed(run, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    waves = batch_of_utterances(args.batch, args.seconds, 16000).to(device)
    lengths = torch.full((args.batch,), waves.shape[1], device=device)
    fbank_cfg = FeatureConfig(deltas=0)
    fbank = FeatureExtractor(fbank_cfg).to(device).eval()
    graves = FeatureExtractor(FeatureConfig.graves2013()).to(device).eval()
    options = dict(num_mel_bins=40, window_type="hamming", dither=0.0, energy_floor=0.0,
                   use_energy=True, htk_compat=True, snip_edges=True)

    contenders = {
        "baseline": lambda: [kaldi.fbank(wave[None], **options) for wave in waves],
        "fbank": lambda: fbank(waves, lengths),
        "graves2013": lambda: graves(waves, lengths),
    }
    with torch.inference_mode():
        for run in contenders.values():  # warm up: allocator, FFT plans, kernels
            run()
        times = {name: [] for name in contenders}
        for _ in range(args.repeats):
            for name, run in contenders.items():
                times[name].append(timed(run, device))

    audio_seconds = args.batch * args.seconds
    frames = args.batch * fbank_cfg.num_frames(waves.shape[1])
    baseline = statistics.median(times["baseline"])
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch} x "
          f"{args.seconds:g} s, {args.repeats} interleaved repeats, medians")
    print(f"{'':12} {'dim':>4} {'ms/batch':>9} {'frames/s':>10} {'RTF (audio s / s)':>18} {'vs baseline':>12}")
    for name, samples in times.items():
        seconds = statistics.median(samples)
        dim = {"baseline": 41, "fbank": fbank_cfg.dim, "graves2013": 123}[name]
        print(f"{name:12} {dim:>4} {seconds * 1e3:>9.2f} {frames / seconds:>10.0f} "
              f"{audio_seconds / seconds:>18.0f} {baseline / seconds:>11.2f}x")


if __name__ == "__main__":
    main()
