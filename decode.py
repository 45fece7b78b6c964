"""`python decode.py --help`: the decode command of a checkout (asr/commands/decode.py; installed as `asr-decode`)."""

from asr.commands.decode import cli, main  # noqa: F401  (main: `import decode; decode.main(argv)`)

if __name__ == "__main__":
    cli()
