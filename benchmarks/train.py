"""Training speed: frames per second of whole training steps, for a Graves 2013 config.

One step is what `asr.training.Trainer.train_step` does: the model's forward
pass (normalisation, peephole BLSTM stack, linear, log-softmax), the CTC loss,
the backward pass and an SGD-with-momentum update, on a batch of B utterances of
about T frames with U labels each (TIMIT averages about 300 frames and 38 phones
per utterance). The same steps are timed, interleaved, for the same network built
on ``nn.LSTM`` (no peepholes: cuDNN on a GPU, oneDNN on a CPU) as the baseline.
The time of one TIMIT epoch is extrapolated from the frame rate: the 3696
training utterances hold about 1.12 M frames.

Run: python benchmarks/train.py [--config recipes/timit/ctc-3l-250h.yaml] [--device cpu|cuda]
                                [--batch 16] [--frames 300] [--labels 38] [--steps 5] [--repeats 3]

On CUDA ours runs the Triton time loop with CUDA graphs (asr/_lstm/triton_loop.py; the
random batch is the same at every step, so one graph shape serves all of them, as it
does for batches whose longest utterances fall in the same 32-frame bucket).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from asr.config import load_config
from asr.model import CTCModel

TIMIT_TRAIN_FRAMES = 1_124_823  # 3696 SI/SX utterances at 10 ms


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="recipes/timit/ctc-3l-250h.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=300, help="mean frames per utterance (lengths vary +-20%%)")
    parser.add_argument("--labels", type=int, default=38)
    parser.add_argument("--steps", type=int, default=5, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timings per model")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    return parser.parse_args(argv)


class TorchLSTMModel(torch.nn.Module):
    """The baseline: the same network on ``nn.LSTM`` (packed sequences), no peepholes."""

    def __init__(self, dim: int, vocab: int, config):
        super().__init__()
        self.lstm = torch.nn.LSTM(dim, config.hidden_size, config.num_layers, batch_first=True,
                                  bidirectional=config.bidirectional)
        self.output = torch.nn.Linear(config.hidden_size * (2 if config.bidirectional else 1), vocab)

    def forward(self, features, lengths):
        packed = torch.nn.utils.rnn.pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = torch.nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        return torch.log_softmax(self.output(hidden).float(), -1)


def make_batch(args, dim: int, vocab: int, device: torch.device):
    generator = torch.Generator().manual_seed(0)
    lengths = (args.frames * (0.8 + 0.4 * torch.rand(args.batch, generator=generator))).long()
    lengths[0] = int(args.frames * 1.2)
    features = torch.randn(args.batch, int(lengths.max()), dim, generator=generator).to(device)
    targets = torch.randint(1, vocab, (args.batch, args.labels), generator=generator).to(device)
    return features, lengths, targets, torch.full((args.batch,), args.labels)


def time_steps(model, batch, args, device) -> float:
    """Seconds for `args.steps` training steps."""
    features, lengths, targets, target_lengths = batch
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            log_probs = model(features, lengths)
        loss = F.ctc_loss(log_probs.float().transpose(0, 1), targets, lengths, target_lengths, reduction="sum")
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    config = load_config(args.config)
    dim, vocab = config.features.dim, 62
    ours = CTCModel(dim, vocab, config.model).to(device)
    baseline = TorchLSTMModel(dim, vocab, config.model).to(device)
    batch = make_batch(args, dim, vocab, device)
    frames = int(batch[1].sum()) * args.steps
    timings = {"ours": [], "baseline": []}
    for model in (ours, baseline):
        time_steps(model, batch, args, device)  # warm-up (and the C++ kernel's first load)
    for _ in range(args.repeats):
        timings["ours"].append(time_steps(ours, batch, args, device))
        timings["baseline"].append(time_steps(baseline, batch, args, device))
    ours_s, base_s = statistics.median(timings["ours"]), statistics.median(timings["baseline"])
    fps, base_fps = frames / ours_s, frames / base_s
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"{args.config}: {ours.num_parameters():,} weights, batch {args.batch} x ~{args.frames} frames, "
          f"{args.precision}, device {device} ({where}), torch {torch.__version__}")
    print(f"peephole BLSTM (ours):   {fps:8.0f} frames/s  -> one TIMIT epoch (1.12 M frames) in "
          f"{TIMIT_TRAIN_FRAMES / fps / 60:.1f} min")
    print(f"nn.LSTM, no peepholes:   {base_fps:8.0f} frames/s  -> {TIMIT_TRAIN_FRAMES / base_fps / 60:.1f} min")
    print(f"ratio (time ours / nn.LSTM): {ours_s / base_s:.2f}")


if __name__ == "__main__":
    main()
