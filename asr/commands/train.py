"""Train a CTC recognizer: python train.py --config CONFIG --data CORPUS --out RUN [section.key=value ...]

Examples:
  python train.py --config recipes/timit/ctc-3l-250h.yaml --dry-run
  python train.py --config recipes/synth/small.yaml --data data/generated/synth-timit --out checkpoints/synth-small
  python train.py --out checkpoints/synth-small --resume            # continue a stopped run
  python train.py --config ... --data ... --out checkpoints/synth-small --overwrite   # start that run over
  torchrun --nproc_per_node 4 train.py --config ... --data ... --out ...   # several GPUs
"""

from __future__ import annotations

import argparse

from asr.cli import run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (sections features, model, data, train); "
                                         "optional with --resume (the run's own config is used)")
    parser.add_argument("--data", help="corpus: a TIMIT tree, a LibriSpeech folder, a JSONL manifest "
                                       "(or a folder of them), or an IAM tree; optional with --resume")
    parser.add_argument("--out", help="run folder for checkpoints (last.pt, best.pt), log.jsonl, curves.png")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in an --out folder that holds one, deleting its files")
    parser.add_argument("--dry-run", action="store_true", help="build the model, print its summary, read no data")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="config overrides, e.g. train.lr=1e-3 model.hidden_size=128")
    return parser.parse_args(argv)


def dry_run(args: argparse.Namespace) -> None:
    from asr.config import load_config
    from asr.corpora import open_corpus
    from asr.errors import UserError
    from asr.model import CTCModel
    from asr.tokens import token_set

    config = load_config(args.config, args.overrides)
    name = config.data.tokens
    texts = []
    if name in ("", "chars"):
        if not args.data:
            raise UserError(f"{args.config}: data.tokens={name or '(corpus default)'} is built from the "
                            "corpus; pass --data too, or set data.tokens (timit61 or speech-chars)")
        corpus = open_corpus(args.data)
        name = name or corpus.default_tokens
        texts = [u.text for u in corpus.read(config.data.train_split)]
    tokens = token_set(name, texts)
    print(f"tokens: {tokens.describe()}")
    print(CTCModel(config.features.dim, len(tokens), config.model).summary())


def main(argv: list[str] | None = None) -> int:
    """The command line; `argv` defaults to sys.argv[1:]. The exit status: 0, or 143/130 after a stop."""
    args = parse_args(argv)
    from asr.config import load_config
    from asr.errors import UserError

    if args.dry_run:
        if not args.config:
            raise UserError("--dry-run needs --config")
        dry_run(args)
        return 0
    if not args.out:
        raise UserError("--out is required: the folder where the run writes its checkpoints")
    if args.resume and args.overwrite:
        raise UserError("--resume continues the run in --out and --overwrite starts it over: choose one")
    if not args.resume and not (args.config and args.data):
        raise UserError("a new run needs --config and --data (or --resume to continue the run in --out)")
    from asr.training import Trainer

    config = load_config(args.config) if args.config else None
    if not args.resume:
        config = config.override(args.overrides)
    trainer = Trainer(config, args.data, args.out, resume=args.resume, overrides=args.overrides,
                      overwrite=args.overwrite)
    trainer.fit()
    return trainer.exit_status


def cli() -> None:
    """The `asr-train` command: `main` with one-line errors and exit codes."""
    run(main)


if __name__ == "__main__":
    cli()
