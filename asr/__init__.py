"""A Graves-style CTC recognizer: peephole BLSTM + CTC for speech and handwriting."""

from asr.errors import UserError

__all__ = ["UserError"]
