"""``python -m asr.lm``: see `asr.lm.cli`."""

from asr.cli import run
from asr.lm.cli import main

run(main)
