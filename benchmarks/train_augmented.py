"""Training speed with on-the-fly augmentation: frames per second of whole epochs, augmentation off
against the same epochs with augmentation on, interleaved in one process.

What is timed is what `asr.training.Trainer.train_epoch` times (and log.jsonl's
frames_per_second reports): building each batch (for waveform effects: augment
every waveform, extract its features, mask them) plus the update, over the clean
training frames. Three runs of one config on one corpus differ only in their
augment section:

    off     no augmentation: cached features
    recipe  benchmarks/augment.py's recipe as recipes/synth/augmented.yaml writes it: speed always,
            synthetic reverberation 0.3, noise 0.5 (babble included), telephone 0.1, gain 0.5, SpecAugment
    spec    SpecAugment alone (the same masks): cached features, masked per epoch

Each repeat runs one epoch of each, a fresh epoch number each time (new augmentation, same
amount of work), and times batch building alone over the same batches. Medians over repeats.

    python -m data.synth_timit --out /tmp/synth --utterances 200
    python benchmarks/train_augmented.py --data /tmp/synth [--config recipes/synth/augmented.yaml]
                                         [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from asr.config import AugmentConfig, load_config
from asr.training import Trainer


def variants(config) -> dict:
    recipe = config.augment
    if not recipe.waveform_enabled:
        raise SystemExit("--config needs an augment section with waveform effects (e.g. recipes/synth/augmented.yaml)")
    masks = {k: getattr(recipe, k) for k in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width",
                                             "time_mask_ratio")}
    return {"off": AugmentConfig(), "recipe": recipe, "spec": AugmentConfig(**masks)}


def epoch(trainer: Trainer) -> tuple[float, float]:
    """One epoch of updates: (training frames per second, seconds spent building batches alone)."""
    state = trainer.state
    state.batch, state.epoch_frames, state.epoch_seconds = 0, 0, 0.0
    trainer.train_epoch()
    fps = state.epoch_frames / state.epoch_seconds
    started = time.perf_counter()
    for indices in trainer.sampler:
        trainer.train_set.batch(indices, epoch=state.epoch)
    building = time.perf_counter() - started
    state.epoch += 1
    return fps, building


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--config", default="recipes/synth/augmented.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config, ["train.checkpoint_every=0", "train.device=cpu"])
    with tempfile.TemporaryDirectory() as folder:
        trainers = {name: Trainer(type(config)(**{**vars(config), "augment": augment}), args.data,
                                  f"{folder}/{name}", log=lambda *a: None)
                    for name, augment in variants(config).items()}
        results = {name: [] for name in trainers}
        for _ in range(args.repeats):
            for name, trainer in trainers.items():
                results[name].append(epoch(trainer))
        for trainer in trainers.values():
            trainer._release()
    frames = trainers["off"].train_set.num_frames()
    off = statistics.median(fps for fps, _ in results["off"])
    print(f"{len(trainers['off'].train_set)} utterances, {frames} frames per epoch; "
          f"{args.threads} thread(s), medians of {args.repeats}")
    print("| augmentation | frames/s | time vs off | batch building s/epoch |")
    print("| --- | --- | --- | --- |")
    for name, runs in results.items():
        fps = statistics.median(f for f, _ in runs)
        print(f"| {name} | {fps:.0f} | {off / fps:.2f} | {statistics.median(b for _, b in runs):.2f} |")


if __name__ == "__main__":
    main()
