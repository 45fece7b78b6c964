"""Augmentation cost: each effect of asr/augment.py and the whole chain, against feature extraction.

16 utterances of 3 s (stretches of the pocketsphinx-testdata recordings when installed,
else noise) go one at a time, as a training data loader would send them, through

    features   FeatureExtractor(FeatureConfig.graves2013()).extract: the baseline (123 values)
    speed, vtlp, reverb, white, pink, babble, telephone, gain+clip, specaugment:
               one effect at probability 1 (SpecAugment on the baseline's features,
               Park et al.'s LD policy: 2 frequency masks of up to 27, 2 time masks of up to 100)
    room-pool  simulated rooms from the pool (built in the warm-up run: the convolution alone)
    room-new   a room simulated for every utterance (room_pool: 0)
    chain      every waveform effect at probability 1 (synthetic reverberation, noise of a
               random kind, babble included), then SpecAugment: the most a config can ask
    recipe     a plausible training recipe: Ko et al.'s speed factors always, synthetic
               reverberation 0.3, noise 0.5, telephone 0.1, gain 0.5, SpecAugment LD

interleaved, several repeats, medians. Every utterance's generator is
utterance_generator(0, 0, index) in every repeat, so each repeat does the same work.
Printed per contender: milliseconds per second of audio, the ratio to feature
extraction of the same audio, and training frames (10 ms) per second of compute,
alone and with the feature extraction that must follow.

    python benchmarks/augment.py [--threads 1] [--repeats 5] [--no-room]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from asr.augment import Augmenter, utterance_generator
from asr.config import AugmentConfig
from asr.features import FeatureConfig, FeatureExtractor

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
RATE = 16000
SPEC_LD = dict(freq_masks=2, freq_mask_width=27, time_masks=2, time_mask_width=100, time_mask_ratio=1.0)
EFFECTS = {
    "speed": dict(speed_prob=1.0),
    "vtlp": dict(vtlp_prob=1.0),
    "reverb": dict(reverb_prob=1.0),
    "room-pool": dict(reverb_prob=1.0, reverb_kind="room"),
    "room-new": dict(reverb_prob=1.0, reverb_kind="room", room_pool=0),
    "white": dict(noise_prob=1.0, noise_kinds=["white"]),
    "pink": dict(noise_prob=1.0, noise_kinds=["pink"]),
    "babble": dict(noise_prob=1.0, noise_kinds=["babble"]),
    "telephone": dict(telephone_prob=1.0),
    "gain+clip": dict(gain_prob=1.0, clip_prob=1.0),
    "specaugment": SPEC_LD,
    "chain": dict(speed_prob=1.0, vtlp_prob=1.0, reverb_prob=1.0, noise_prob=1.0, telephone_prob=1.0,
                  gain_prob=1.0, clip_prob=1.0, noise_kinds=["white", "pink", "brown", "babble"], **SPEC_LD),
    "recipe": dict(speed_prob=1.0, reverb_prob=0.3, noise_prob=0.5, telephone_prob=0.1, gain_prob=0.5,
                   noise_kinds=["white", "pink", "brown", "babble"], **SPEC_LD),
}


def utterances(count: int, seconds: float) -> list[torch.Tensor]:
    samples = int(seconds * RATE)
    recordings = sorted(LIBRIVOX.glob("*.wav"))
    if not recordings:
        return list(0.1 * torch.randn(count, samples, generator=torch.Generator().manual_seed(0)))
    from asr.audio import load_audio  # noqa: PLC0415
    speech = torch.cat([load_audio(path, RATE) for path in recordings])
    starts = torch.linspace(0, len(speech) - samples, count).long()  # different stretches
    return [speech[start:start + samples].clone() for start in starts]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a loader worker has one)")
    parser.add_argument("--no-room", action="store_true", help="leave out pyroomacoustics' room simulation")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    waves = utterances(args.count, args.seconds)
    features_config = FeatureConfig.graves2013()
    extractor = FeatureExtractor(features_config).eval()
    with torch.inference_mode():
        features = [extractor.extract(wave) for wave in waves]
    effects = {name: values for name, values in EFFECTS.items() if not (args.no_room and name.startswith("room"))}
    augmenters = {name: Augmenter.for_features(AugmentConfig(**values), features_config)
                  for name, values in effects.items()}

    def augment(augmenter: Augmenter) -> None:
        for index, (wave, feats) in enumerate(zip(waves, features)):
            rng = utterance_generator(0, 0, index)
            others = waves[:index] + waves[index + 1:]
            augmenter.waveform(wave, rng, others=others)
            augmenter.features(feats, rng)

    contenders = {"features": lambda: [extractor.extract(wave) for wave in waves]}
    contenders |= {name: (lambda a=augmenter: augment(a)) for name, augmenter in augmenters.items()}
    times = {name: [] for name in contenders}
    with torch.inference_mode():
        for run in contenders.values():  # warm up: resampler kernels, FFT plans, allocator
            run()
        for _ in range(args.repeats):
            for name, run in contenders.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)

    audio = args.count * args.seconds
    frames = args.count * features_config.num_frames(int(args.seconds * RATE))
    baseline = statistics.median(times["features"])
    print(f"torch threads {torch.get_num_threads()}, {args.count} utterances x {args.seconds:g} s one at a "
          f"time, {args.repeats} interleaved repeats, medians")
    print(f"{'':12} {'ms / s audio':>12} {'x features':>11} {'frames/s':>10} {'frames/s with features':>23}")
    for name, samples in times.items():
        seconds = statistics.median(samples)
        with_features = seconds + (baseline if name != "features" else 0)
        print(f"{name:12} {seconds / audio * 1e3:>12.2f} {seconds / baseline:>11.2f} {frames / seconds:>10.0f} "
              f"{frames / with_features:>23.0f}")


if __name__ == "__main__":
    main()
