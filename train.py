"""`python train.py --help`: the train command of a checkout (asr/commands/train.py; installed as `asr-train`)."""

from asr.commands.train import cli, main  # noqa: F401  (main: `import train; train.main(argv)`)

if __name__ == "__main__":
    cli()
