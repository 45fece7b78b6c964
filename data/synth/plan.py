"""Who reads what: speakers split into TRAIN and TEST, and sentences dealt out as in TIMIT.

TIMIT's design (Garofolo et al. 1993): every speaker reads the two dialect
sentences SA1 and SA2; each SX sentence is read by 7 speakers; each SI
sentence by one; a speaker reads 5 SX for every 3 SI. Test speakers never
appear in training, and no SI/SX sentence is read in both TRAIN and TEST. The
plan is a pure function of its arguments and the seed, so a seed fixes the
corpus.

Held-out voices (`data.synth.voices.held_out`) put all their speakers in TEST:
a test voice never speaks in training. With no held-out voice among those
chosen (one voice alone, say), a `test_fraction` share of each voice's
speakers is held out instead: TIMIT's rule for speakers, not for voices.
Sentences go to TRAIN or TEST by a hash of their words
(`data.synth.text.sentence_split`), whatever the seed or the voices, so that
the training text an LM is built from never holds a test sentence of any corpus.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from asr.errors import UserError
from data.synth.text import SA_SENTENCES, sentence_split
from data.synth.voices import Speaker, Voice, speakers_of

SPLITS = ("TRAIN", "TEST")
SX_READERS = 7
SX_SHARE = 5 / 8


@dataclass(frozen=True)
class Job:
    """One utterance to synthesize: ``<split>/DR<r>/<speaker>/<name>`` reading ``text``."""

    split: str
    speaker: Speaker
    name: str
    text: str

    @property
    def folder(self) -> str:
        return f"{self.split}/DR{self.speaker.voice.region}/{self.speaker.id}"

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.name}"

    def seed(self, corpus_seed: int) -> int:
        """A 31-bit seed for this utterance's noise, independent of the order of work."""
        return zlib.crc32(f"{corpus_seed}/{self.path}".encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class Plan:
    jobs: tuple[Job, ...]
    speakers: dict[str, tuple[Speaker, ...]]  # by split
    dev: frozenset[str] = frozenset()  # IDs of the TEST speakers whose voices are held out for DEV


def make_plan(
    voices: Sequence[Voice],
    sentences: Sequence[str],
    utterances: int,
    test_fraction: float,
    speakers_per_voice: int,
    seed: int,
    dialect_sentences: bool = True,
    held_out: dict[str, str] | None = None,
) -> Plan:
    """Deal `utterances` SI/SX readings of `sentences` to the voices' speakers.

    Each voice contributes `speakers_per_voice` speakers of its grid, of which a
    `test_fraction` share (at least one) is held out for TEST; utterances are
    spread evenly over speakers. With `dialect_sentences`, every speaker also
    reads SA1 and SA2 (on top of `utterances`). `held_out` (voice name -> TEST or
    DEV) overrides `test_fraction` when it names a chosen voice: see the module docstring.
    """
    rng = random.Random(seed)
    held = {name: use for name, use in (held_out or {}).items() if any(v.name == name for v in voices)}
    if held:
        speakers = _hold_out_voices(voices, held, speakers_per_voice, rng)
        if not speakers["TRAIN"]:
            raise UserError("every chosen voice is held out for TEST or DEV: choose some voices to train on")
    else:
        speakers = _choose_speakers(voices, test_fraction, speakers_per_voice, rng)
    pools = {split: [t for t in sentences if sentence_split(t) == split] for split in SPLITS}
    for pool in pools.values():
        rng.shuffle(pool)
        pool.reverse()  # pop() then deals in shuffled order
    n_speakers = sum(len(s) for s in speakers.values())
    n_test = round(utterances * len(speakers["TEST"]) / n_speakers)
    readings = {"TRAIN": utterances - n_test, "TEST": n_test}

    sx_readers: dict[str, list[tuple[Speaker, str]]] = {}
    si_readers: dict[str, list[tuple[Speaker, str]]] = {}
    for split in SPLITS:
        counts = _spread(readings[split], speakers[split], rng)
        sx_counts = {s: round(n * SX_SHARE) for s, n in counts.items()}
        sx_readers[split] = _deal_shared(sx_counts, pools[split], utterances)
        si_readers[split] = [
            (s, _take(pools[split], utterances)) for s in speakers[split] for _ in range(counts[s] - sx_counts[s])
        ]

    jobs = []
    numbers: dict[str, int] = {}  # TIMIT numbers sentences, not readings: SX12 is one sentence
    for prefix, readers in (("SX", sx_readers), ("SI", si_readers)):
        for split in SPLITS:
            for speaker, text in readers[split]:
                number = numbers.setdefault(text, len(numbers) + 1)
                jobs.append(Job(split, speaker, f"{prefix}{number}", text))
    if dialect_sentences:
        for split in SPLITS:
            for speaker in speakers[split]:
                jobs += [Job(split, speaker, f"SA{i}", t) for i, t in enumerate(SA_SENTENCES, 1)]
    jobs.sort(key=lambda j: (j.split, j.folder, j.name))
    dev = frozenset(s.id for s in speakers["TEST"] if held.get(s.voice.name) == "DEV")
    return Plan(tuple(jobs), {k: tuple(v) for k, v in speakers.items()}, dev)


def _hold_out_voices(
    voices: Sequence[Voice], held: dict[str, str], per_voice: int, rng: random.Random
) -> dict[str, list[Speaker]]:
    """`per_voice` speakers of each voice: a held-out voice's all in TEST, the others' in TRAIN."""
    grid_size = len(speakers_of(voices[0]))
    if not 1 <= per_voice <= grid_size:
        raise UserError(f"--speakers-per-voice {per_voice}: choose 1 to {grid_size}")
    chosen: dict[str, list[Speaker]] = {"TRAIN": [], "TEST": []}
    for voice in voices:
        grid = sorted(rng.sample(speakers_of(voice), per_voice), key=lambda s: s.id)
        chosen["TEST" if voice.name in held else "TRAIN"] += grid
    return chosen


def _choose_speakers(
    voices: Sequence[Voice], test_fraction: float, per_voice: int, rng: random.Random
) -> dict[str, list[Speaker]]:
    grid_size = len(speakers_of(voices[0]))
    if not 2 <= per_voice <= grid_size:
        raise UserError(f"--speakers-per-voice {per_voice}: choose 2 to {grid_size}")
    if not 0 < test_fraction < 1:
        raise UserError(f"--test-fraction {test_fraction}: choose a number between 0 and 1")
    n_test = min(per_voice - 1, max(1, round(test_fraction * per_voice)))
    chosen: dict[str, list[Speaker]] = {"TRAIN": [], "TEST": []}
    for voice in voices:
        grid = rng.sample(speakers_of(voice), per_voice)
        chosen["TEST"] += sorted(grid[:n_test], key=lambda s: s.id)
        chosen["TRAIN"] += sorted(grid[n_test:], key=lambda s: s.id)
    return chosen


def _spread(total: int, speakers: Sequence[Speaker], rng: random.Random) -> dict[Speaker, int]:
    """`total` readings over `speakers` as evenly as possible (the remainder to random ones)."""
    base, extra = divmod(total, len(speakers))
    lucky = set(rng.sample(list(speakers), extra))
    return {s: base + (s in lucky) for s in speakers}


def _deal_shared(counts: dict[Speaker, int], pool: list[str], wanted: int) -> list[tuple[Speaker, str]]:
    """Each sentence to up to `SX_READERS` distinct speakers, those with most readings left first."""
    left = dict(counts)
    order = {s: i for i, s in enumerate(counts)}
    readings = []
    turn = 0
    while any(left.values()):
        waiting = [s for s in left if left[s]]
        # ties rotate, so that the same speakers do not always read together
        waiting.sort(key=lambda s: (-left[s], (order[s] - turn) % len(order)))
        text = _take(pool, wanted)
        for speaker in waiting[:SX_READERS]:
            readings.append((speaker, text))
            left[speaker] -= 1
        turn += 1
    return readings


def _take(pool: list[str], wanted: int) -> str:
    if not pool:
        raise UserError(
            f"--utterances {wanted}: the text sources ran out of distinct sentences. "
            "Add a source (--text wordnet,bible) or ask for fewer utterances"
        )
    return pool.pop()
