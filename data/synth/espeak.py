"""espeak-ng 1.51 in-process through libespeak-ng (ctypes): audio with espeak's phone and word events.

espeak-ng (Dunn et al., after Jonathan Duddington's eSpeak) reports its
timings only through the synthesis callback's events: initialised with
``espeakINITIALIZE_PHONEME_EVENTS`` it sends one ``espeakEVENT_PHONEME`` per
phone with the sample at which the phone *starts* (``sample``) and the phone's
mnemonic in ``id.string``, plus one ``espeakEVENT_WORD`` per word it says
(``text_position`` is the word's 1-based offset in the text). A phone ends
where the next one starts; the last ends with the audio.

Mnemonics are espeak's own (``T``, ``D``, ``tS``, ``@``, ``3:``, ``t#`` ...);
`MNEMONICS` maps each one that English voices emit onto TIMIT's phones. A
few are two TIMIT phones in one segment (the r-coloured vowels of a rhotic
accent: ``A@`` in "car" is ``aa r``): the segment is split in equal parts.

Words: espeak sometimes says two tokens as one word ("for a" in "thrown for a
loss" gives one word event). An utterance whose every token has its own word
event gets word timings (the span of the phones that carry the word's text
position); one with a merged word gets none, so it is written without a WRD
file rather than with invented boundaries.

Voices are set by file name (``gmw/en-US+f3``): ``espeak_SetVoiceByName("en-gb")``
fails silently. Speaking rate is espeak's words per minute (175 at
``stretch`` 1), and a speaker's ``warp`` also moves espeak's base pitch.

espeak carries state from one sentence to the next (measured here: the same
sentence twice in a row gives different samples, even different lengths), so
a sentence would sound different after different sentences, and a corpus
would depend on how work was split between processes. Each sentence is
therefore spoken in a forked child of a process whose espeak has been
initialised but has never spoken nor loaded a voice (the first sentence of a
fresh espeak is the same every time; and after about 25 voice changes in one
process espeak stops sending word events, measured here); the child loads
the voice, seeds the C library's ``rand()`` (the Klatt variants' noise), and
sends the result back through a pipe. The forking is done by a small server
process (`serve`), not by the generator's own larger one.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Sequence
from ctypes import CFUNCTYPE, POINTER, Structure, Union, c_char, c_char_p, c_int, c_short, c_uint, c_void_p
from pathlib import Path

import numpy as np

from asr.errors import UserError
from asr.tokens import TIMIT_PHONES
from data.synth.labels import PAUSE, CorpusError
from data.synth.synthesis import Synthesis

LIBRARY = "libespeak-ng.so.1"
APT_PACKAGE = "libespeak-ng1 espeak-ng-data"
DEFAULT_RATE = 175  # words per minute, espeak's default
DEFAULT_PITCH = 50  # espeak's 0-100 scale

# Accents: espeak's voice file (under espeak-ng-data/voices) -> whether it is rhotic.
ACCENTS: dict[str, bool] = {
    "gmw/en": False,
    "gmw/en-US": True,
    "gmw/en-US-nyc": True,
    "gmw/en-GB-scotland": True,
    "gmw/en-GB-x-rp": False,
    "gmw/en-GB-x-gbclan": False,
    "gmw/en-GB-x-gbcwmd": False,
    "gmw/en-029": False,
}

# The voices are already TIMIT phones (see `MNEMONICS`): the generator's map is the identity.
PHONE_MAP: dict[str, str] = {p: p for p in TIMIT_PHONES if p != "h#"} | {PAUSE: PAUSE}

# espeak's English mnemonics (espeak-ng's phsource/ph_english*) -> TIMIT phones. Two phones
# in one segment are split in equal parts; `RHOTIC_ONLY` second halves are dropped in
# non-rhotic accents. Collected from every accent reading WordNet and KJV sentences.
MNEMONICS: dict[str, tuple[str, ...]] = {
    # pauses
    "_": (PAUSE,), "_:": (PAUSE,), "_!": (PAUSE,), "_|": (PAUSE,), "_^_": (PAUSE,),
    # consonants
    "p": ("p",), "b": ("b",), "t": ("t",), "d": ("d",), "k": ("k",), "g": ("g",),
    "t2": ("t",), "t[": ("t",), "d[": ("d",), "t#": ("dx",), "d#": ("dx",), "?": ("q",),
    "tS": ("ch",), "dZ": ("jh",),
    "f": ("f",), "v": ("v",), "T": ("th",), "D": ("dh",), "s": ("s",), "z": ("z",),
    "S": ("sh",), "Z": ("zh",), "h": ("hh",), "x": ("hh",), "C": ("hh",),
    "m": ("m",), "n": ("n",), "N": ("ng",), "n-": ("en",), "m-": ("em",),
    "l": ("l",), "l/": ("l",), "l/2": ("l",), "@L": ("el",), "L": ("el",),
    "r": ("r",), "r-": ("r",), "*": ("dx",), "w": ("w",), "w#": ("w",), "W": ("w",),
    "j": ("y",), ";": ("y",),  # ';': the y-glide espeak puts between a front vowel and a vowel
    # vowels
    "a": ("ae",), "aa": ("ae",), "a#": ("ax",), "a2": ("ax",), "A:": ("aa",), "A": ("aa",),
    "A@": ("aa", "r"), "0": ("aa",), "0#": ("aa",), "V": ("ah",), "VR": ("er",),
    "E": ("eh",), "E2": ("eh",), "E#": ("eh",), "e@": ("eh", "r"), "eI": ("ey",),
    "I": ("ih",), "I2": ("ix",), "I#": ("ix",), "IR": ("ih", "r"), "i": ("iy",), "i:": ("iy",),
    "i@": ("ih", "r"), "i@3": ("ih", "r"), "iU": ("uw",),
    "O": ("ao",), "O:": ("ao",), "O2": ("ao",), "O@": ("ao", "r"), "o@": ("ao", "r"), "OI": ("oy",),
    "o": ("ow",), "oU": ("ow",), "oU#": ("ow",),
    "U": ("uh",), "U@": ("uh", "r"), "u:": ("uw",), "u": ("uw",), "uI": ("uw",),
    "@": ("ax",), "@2": ("ax",), "@5": ("ax",), "@-": ("ax",), "@#": ("ax",),
    "3": ("axr",), "3:": ("er",), "@r": ("axr",),
    "aI": ("ay",), "aI2": ("ay",), "aI3": ("ay",), "aI@": ("ay", "axr"), "aI@3": ("ay", "axr"),
    "aU": ("aw",), "aU@": ("aw", "axr"), "EI": ("ey",), "eI#": ("ey",),
}
RHOTIC_ONLY = frozenset({"r", "axr"})
_R_COLOURED = frozenset({"r", "er", "axr"})
LEAD_SILENCE = 0.05  # seconds of silence put before the audio: espeak may start speaking at once

_SAMPLERATE = 8
_PHONEME = 7
_WORD = 1
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_RATE, _PITCH = 1, 3


class _Id(Union):
    _fields_ = [("number", c_int), ("name", c_char_p), ("string", c_char * 8)]


class _Event(Structure):
    _fields_ = [
        ("type", c_int),
        ("unique_identifier", c_uint),
        ("text_position", c_int),
        ("length", c_int),
        ("audio_position", c_int),
        ("sample", c_int),
        ("user_data", c_void_p),
        ("id", _Id),
    ]


_CALLBACK = CFUNCTYPE(c_int, POINTER(c_short), c_int, POINTER(_Event))


def voice_file(ident: str) -> str:
    """espeak's voice file for ``accent+variant`` (``en-US+f3`` -> ``gmw/en-US+f3``)."""
    return "gmw/" + ident


def check_voice(ident: str) -> None:
    """Raise `UserError` naming the apt packages if libespeak-ng cannot be loaded."""
    try:
        ctypes.CDLL(LIBRARY)
    except OSError:
        raise UserError(
            f"{LIBRARY}: espeak-ng's library for voice {ident!r} is not installed. "
            f"Install it (apt-get install {APT_PACKAGE}) or leave espeak voices out with --voices"
        ) from None


def to_timit(mnemonic: str, rhotic: bool) -> tuple[str, ...]:
    """The TIMIT phones of one espeak mnemonic in a (non-)rhotic accent; `CorpusError` if unmapped."""
    if mnemonic not in MNEMONICS:
        raise CorpusError(f"espeak's phoneme {mnemonic!r} has no TIMIT mapping in data.synth.espeak.MNEMONICS")
    phones = MNEMONICS[mnemonic]
    if not rhotic and len(phones) > 1 and phones[-1] in RHOTIC_ONLY:
        phones = phones[:-1]
    return phones


class Espeak:
    """libespeak-ng loaded once per process, synchronous, with phoneme events."""

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(LIBRARY)
        self._lib.espeak_Initialize.restype = c_int
        self._lib.espeak_Initialize.argtypes = [c_int, c_int, c_char_p, c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [c_char_p]
        self._lib.espeak_SetParameter.argtypes = [c_int, c_int, c_int]
        self._lib.espeak_Synth.argtypes = [c_void_p, ctypes.c_size_t, c_uint, c_int, c_uint, c_uint, c_void_p, c_void_p]
        self.sample_rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed: is espeak-ng-data installed?")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._callback = _CALLBACK(self._collect)  # kept: C holds only a pointer to it
        self._lib.espeak_SetSynthCallback(self._callback)
        self._libc = ctypes.CDLL(None)

    def _collect(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        i = 0
        while events[i].type != 0:
            e = events[i]
            label = e.id.string.decode("ascii", "replace") if e.type == _PHONEME else ""
            self._events.append((e.type, e.text_position, e.length, e.sample, label))
            i += 1
        return 0

    def synthesize(self, ident: str, text: str, stretch: float, pitch: int, seed: int) -> Synthesis:
        """`text` in voice `ident` (``en-US+f3``), at 175/`stretch` words per minute.

        The sentence is spoken by a forked child of this process, whose espeak has
        never spoken: see the module docstring.
        """
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: speak, send the result (or the error) back, and leave at once
            os.close(read)
            try:
                result: object = self._speak(ident, text, stretch, pitch, seed)
            except BaseException as error:  # noqa: BLE001 - handed to the parent, which raises it
                result = error
            with os.fdopen(write, "wb") as pipe:
                pickle.dump(result, pipe)
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if not data:
            raise RuntimeError(f"espeak-ng (voice {ident}) died speaking {text!r} (wait status {status})")
        result = pickle.loads(data)
        if isinstance(result, BaseException):
            raise result
        return result

    def _speak(self, ident: str, text: str, stretch: float, pitch: int, seed: int) -> Synthesis:
        accent = voice_file(ident.split("+")[0])
        if self._lib.espeak_SetVoiceByName(voice_file(ident).encode()) != 0:
            raise UserError(f"espeak-ng has no voice {voice_file(ident)!r}")
        self._lib.espeak_SetParameter(_RATE, round(DEFAULT_RATE / stretch), 0)
        self._lib.espeak_SetParameter(_PITCH, pitch, 0)
        self._chunks.clear()
        self._events.clear()
        self._libc.srand(seed)
        data = text.encode("ascii")
        self._lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 0, None, None)
        lead = round(LEAD_SILENCE * self.sample_rate)
        audio = np.concatenate([np.zeros(lead, np.int16), *self._chunks])
        events = [(kind, pos, length, sample + lead, label) for kind, pos, length, sample, label in self._events]
        phones, said = timings(events, len(audio), self.sample_rate, text, ACCENTS[accent])
        return Synthesis(audio, self.sample_rate, phones, complete_words(said, text), said)


def timings(
    events: Sequence[tuple[int, int, int, int, str]], n_samples: int, rate: int, text: str, rhotic: bool
) -> tuple[list[tuple[str, float]], list[tuple[int, float, float]] | None]:
    """(TIMIT phones with end times, the words said) from espeak's events.

    ``events``: (type, text_position, length, start sample, mnemonic). A leading
    stretch before the first phone is a pause; the last phone ends with the audio.
    The words are (token index, start, end); a merged word has its first token's index.
    """
    starts = [(sample, label, position) for kind, position, _, sample, label in events if kind == _PHONEME]
    phones: list[tuple[str, float]] = []
    spans: dict[int, list[float]] = {}
    first = starts[0][0] if starts else n_samples
    if first > 0:
        phones.append((PAUSE, first / rate))
    for i, (start, label, position) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else n_samples
        end = max(start, min(end, n_samples))
        parts = to_timit(label, rhotic)
        previous = phones[-1][0] if phones else None
        same_word = i > 0 and starts[i - 1][2] == position
        if same_word and len(parts) == 1 and (
            parts[0] == previous != PAUSE or (label == "r-" and previous in _R_COLOURED)
        ):
            # the same phone again, or a linking r after an r-coloured vowel, within a word: one segment
            phones[-1] = (previous, end / rate)
        else:
            for k, phone in enumerate(parts, 1):
                phones.append((phone, (start + (end - start) * k / len(parts)) / rate))
        if parts != (PAUSE,) and end > start:
            span = spans.setdefault(position, [start / rate, end / rate])
            span[1] = end / rate
    if not phones or phones[-1][0] != PAUSE:
        phones.append((PAUSE, n_samples / rate))
    said = sorted(position for kind, position, *_ in events if kind == _WORD and position in spans)
    tokens = _token_positions(text)
    return phones, [(tokens[p], *spans[p]) for p in said if p in tokens]


def complete_words(said: list[tuple[int, float, float]], text: str) -> list[tuple[int, float, float]] | None:
    """`said` if every token of `text` has its own word in it, else None: a merged or missing
    word leaves the utterance without word timings."""
    return said if sorted(t for t, _, _ in said) == list(range(len(text.split()))) else None


def _token_positions(text: str) -> dict[int, int]:
    """1-based character offset of each whitespace token (and of its inner letters) -> its index."""
    positions = {}
    offset = 0
    for index, token in enumerate(text.split()):
        offset = text.index(token, offset)
        for k in range(len(token)):
            positions.setdefault(offset + k + 1, index)
        offset += len(token)
    return positions


class _Server:
    """A small process that owns a never-used espeak and forks a child per sentence.

    Forking the generator's own process per sentence would copy its page tables
    (its sentence lists and plan: over 100 MB) each time; this process holds
    only espeak and numpy. Requests and results travel pickled through its pipes.
    """

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from data.synth.espeak import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )

    def synthesize(self, *request) -> Synthesis:
        pickle.dump(request, self._process.stdin)
        self._process.stdin.flush()
        try:
            result = pickle.load(self._process.stdout)
        except EOFError:
            raise RuntimeError(f"the espeak-ng server stopped (exit status {self._process.wait()})") from None
        if isinstance(result, BaseException):
            raise result
        return result


def serve() -> None:
    """The server's loop: one pickled (ident, text, stretch, pitch, seed) in, one result out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the generator's to handle; EOF ends this
    engine = Espeak()
    requests, results = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            return
        try:
            result: object = engine.synthesize(*request)
        except BaseException as error:  # noqa: BLE001 - handed to the client, which raises it
            result = error
        pickle.dump(result, results)
        results.flush()


_SERVERS: dict[int, _Server] = {}  # by process ID: a forked process must not share its parent's pipes


def synthesize_batch(ident: str, sentences: Sequence[tuple[str, float, int, float]]) -> list[Synthesis]:
    """Each (text, duration stretch, seed, warp) of `sentences` in voice `ident` (``en-US+f3``).

    The speaker's warp also moves espeak's base pitch (34, 50, 66 for warps 0.92, 1, 1.08),
    so that espeak's speakers differ in pitch more than the warp alone makes them.
    """
    server = _SERVERS.get(os.getpid())
    if server is None:
        server = _SERVERS[os.getpid()] = _Server()
    return [
        server.synthesize(ident, text, stretch, round(DEFAULT_PITCH + (warp - 1) * 200), seed)
        for text, stretch, seed, warp in sentences
    ]
