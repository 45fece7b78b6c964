"""``python -m asr.lm``: see `asr.lm.cli`."""

from asr.lm.cli import cli

cli()
