"""flite 2.2 in-process through libflite (ctypes): audio with flite's exact phone and word timings.

flite's utterance structure (Black & Lenzo, "Flite: a small fast run-time
synthesis engine", 2001) holds the Segment relation (phones with ``end``
times) and the Word relation, whose SylStructure daughters are the segments of
each word, and whose Token parents are the whitespace tokens of the text.
Reading them in process is exact, gives the words (``flite -psdur`` prints
phones only) and saves starting a process per sentence.

flite's clustergen voices (slt, awb, rms) draw their excitation noise from the
C library's ``rand()``; `Flite.synthesize` seeds it per sentence so that a
sentence sounds the same whatever was synthesized before it in the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Sequence
from ctypes import POINTER, Structure, c_char_p, c_float, c_int, c_short, c_void_p

import numpy as np

from asr.errors import UserError
from data.synth.labels import ARPABET_TO_TIMIT
from data.synth.synthesis import Synthesis

LIBRARY = "libflite.so.1"
VOICE_LIBRARY = "libflite_cmu_us_{}.so.1"
APT_PACKAGE = "flite"
PHONE_MAP = ARPABET_TO_TIMIT


class _Wave(Structure):
    _fields_ = [
        ("type", c_char_p),
        ("sample_rate", c_int),
        ("num_samples", c_int),
        ("num_channels", c_int),
        ("samples", POINTER(c_short)),
    ]


class _Voice(Structure):
    _fields_ = [("name", c_char_p), ("features", c_void_p), ("ffunctions", c_void_p)]


_SIGNATURES = {
    "flite_synth_text": (c_void_p, [c_char_p, c_void_p]),
    "utt_wave": (POINTER(_Wave), [c_void_p]),
    "utt_relation": (c_void_p, [c_void_p, c_char_p]),
    "relation_head": (c_void_p, [c_void_p]),
    "item_next": (c_void_p, [c_void_p]),
    "item_as": (c_void_p, [c_void_p, c_char_p]),
    "item_parent": (c_void_p, [c_void_p]),
    "item_feat_string": (c_char_p, [c_void_p, c_char_p]),
    "item_feat_float": (c_float, [c_void_p, c_char_p]),
    "ffeature_float": (c_float, [c_void_p, c_char_p]),
    "feat_set_float": (None, [c_void_p, c_char_p, c_float]),
    "delete_utterance": (None, [c_void_p]),
}

_WORD_START = b"R:SylStructure.daughter1.daughter1.R:Segment.p.end"
_WORD_END = b"R:SylStructure.daughtern.daughtern.R:Segment.end"


def check_voice(ident: str) -> None:
    """Raise `UserError` naming the apt package if flite or its voice `ident` cannot be loaded."""
    for name in (LIBRARY, VOICE_LIBRARY.format(ident)):
        try:
            ctypes.CDLL(name)
        except OSError:
            raise UserError(
                f"{name}: flite's library for voice {ident!r} is not installed. "
                f"Install it (apt-get install {APT_PACKAGE}) or leave flite voices out with --voices"
            ) from None


class Flite:
    """libflite loaded once per process; voices registered on first use."""

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(LIBRARY, mode=ctypes.RTLD_GLOBAL)
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(self._lib, name)
            function.restype, function.argtypes = restype, argtypes
        self._lib.flite_init()
        self._libc = ctypes.CDLL(None)
        self._voices: dict[str, POINTER(_Voice)] = {}

    def _voice(self, ident: str):
        if ident not in self._voices:
            library = ctypes.CDLL(VOICE_LIBRARY.format(ident))
            register = getattr(library, f"register_cmu_us_{ident}")
            register.restype, register.argtypes = POINTER(_Voice), [c_char_p]
            self._voices[ident] = register(None)
        return self._voices[ident]

    def synthesize(self, ident: str, text: str, stretch: float, seed: int) -> Synthesis:
        """`text` in voice `ident` (slt, awb, rms, kal16), durations scaled by `stretch`."""
        lib, voice = self._lib, self._voice(ident)
        lib.feat_set_float(voice.contents.features, b"duration_stretch", stretch)
        self._libc.srand(seed)
        utt = lib.flite_synth_text(text.encode(), ctypes.cast(voice, c_void_p))
        try:
            wave = lib.utt_wave(utt).contents
            samples = wave.num_samples * wave.num_channels
            audio = np.ctypeslib.as_array(wave.samples, (samples,)).copy()
            phones = [
                (lib.item_feat_string(s, b"name").decode(), lib.item_feat_float(s, b"end"))
                for s in self._items(utt, b"Segment")
            ]
            tokens = {token: i for i, token in enumerate(self._items(utt, b"Token"))}
            words = [
                (
                    tokens[lib.item_parent(lib.item_as(w, b"Token"))],
                    lib.ffeature_float(w, _WORD_START),
                    lib.ffeature_float(w, _WORD_END),
                )
                for w in self._items(utt, b"Word")
            ]
            return Synthesis(audio, wave.sample_rate, phones, words)
        finally:
            lib.delete_utterance(utt)

    def _items(self, utt: int, relation: bytes) -> list[int]:
        item = self._lib.relation_head(self._lib.utt_relation(utt, relation))
        items = []
        while item:
            items.append(item)
            item = self._lib.item_next(item)
        return items


_FLITE: Flite | None = None  # one per process, made on first use


def synthesize_batch(ident: str, sentences: Sequence[tuple[str, float, int, float]]) -> list[Synthesis]:
    """Each (text, duration stretch, noise seed, warp) of `sentences` in voice `ident`."""
    global _FLITE
    if _FLITE is None:
        _FLITE = Flite()
    with _quiet_stderr():  # kal16 reports each missing diphone on stderr
        return [_FLITE.synthesize(ident, text, stretch, seed) for text, stretch, seed, *_ in sentences]


@contextlib.contextmanager
def _quiet_stderr():
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
