"""Generate the whole corpus: synthesize in parallel, check, then put the tree in place.

Work goes into ``<out>.partial/`` in chunks of one voice's utterances (one
festival process per chunk); the finished tree is checked
(`data.synth.tree.check_tree`) and only then renamed to ``<out>``, so an
interrupted run never leaves a tree that looks complete. Running the same
command again resumes: utterances already written are kept. Each utterance
depends only on the plan and the seed, never on which process made it or
when, so a seed gives byte-identical files whatever ``jobs`` is.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from asr.errors import UserError
from data.synth import espeak, festival, flite, lexicon, text
from data.synth.plan import Job, Plan
from data.synth.render import RenderSettings, render
from data.synth.tree import TreeSummary, check_tree, is_written, write_utterance
from data.synth.voices import Voice

ENGINES = {"flite": flite, "festival": festival, "espeak": espeak}
CHUNK = 32
SETTINGS_FILE = "GENERATOR.json"  # in <out>/DOC: marks a tree (or a partial one) as ours
FORMAT_VERSION = 2  # 2: held-out voices, sentences split by hash, espeak-ng


@dataclass(frozen=True)
class Settings:
    """Everything that decides the corpus' bytes (the number of processes does not)."""

    voices: tuple[str, ...]
    text: tuple[str, ...]
    utterances: int
    seed: int
    test_fraction: float
    speakers_per_voice: int
    dialect_sentences: bool
    render: RenderSettings
    test_voices: tuple[str, ...] = ()
    dev_voices: tuple[str, ...] = ()
    lexicon: str = "engine"  # or "cmu": data.synth.lexicon

    def as_json(self) -> dict:
        """The settings as JSON reads them back (lists, not tuples). The default lexicon is
        left out, so that corpora made before the setting existed keep their description."""
        settings = asdict(self)
        if settings["lexicon"] == "engine":
            del settings["lexicon"]
        return json.loads(json.dumps({"format": FORMAT_VERSION, **settings}))


@dataclass
class Report:
    summary: TreeSummary
    generated: int  # utterances synthesized by this run (the rest were resumed)
    wall_seconds: float


def check_voices(voices: Sequence[Voice]) -> None:
    """Raise `UserError` (naming the apt package) for the first voice that is not installed."""
    for voice in voices:
        ENGINES[voice.engine].check_voice(voice.ident)


def generate(out: Path, plan: Plan, settings: Settings, jobs: int, force: bool = False) -> Report:
    """Write `plan` as a TIMIT tree at `out` with `jobs` processes; see the module docstring."""
    started = time.perf_counter()
    check_replaceable(out, force)
    partial = out.with_name(out.name + ".partial")
    _prepare_partial(partial, settings)
    todo = [job for job in plan.jobs if not is_written(partial / job.path)]
    work = [(chunk, partial, settings) for chunk in _chunks(todo)]
    with tqdm(total=len(plan.jobs), initial=len(plan.jobs) - len(todo), unit="utt", desc="synthesizing") as bar:
        if jobs <= 1:
            for done in map(_synthesize_chunk, work):
                bar.update(done)
        else:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                for done in pool.imap_unordered(_synthesize_chunk, work):
                    bar.update(done)
    _write_docs(partial, plan, settings)
    summary = check_tree(partial)
    _replace(partial, out)
    return Report(summary, len(todo), time.perf_counter() - started)


def _chunks(todo: Sequence[Job]) -> Iterator[tuple[Voice, tuple[Job, ...]]]:
    """Chunks of one voice's jobs, voices taking turns so that the work stays mixed."""
    by_voice: dict[Voice, list[Job]] = {}
    for job in todo:
        by_voice.setdefault(job.speaker.voice, []).append(job)
    queues = [[tuple(js[i : i + CHUNK]) for i in range(0, len(js), CHUNK)] for js in by_voice.values()]
    for turn in range(max((len(q) for q in queues), default=0)):
        for voice, queue in zip(by_voice, queues):
            if turn < len(queue):
                yield voice, queue[turn]


def _synthesize_chunk(work: tuple[tuple[Voice, tuple[Job, ...]], Path, Settings]) -> int:
    (voice, jobs), root, settings = work
    engine = ENGINES[voice.engine]
    # (text, duration stretch, seed, warp): the stretch includes the warp, which the audio undoes
    sentences = [
        (j.text, j.speaker.stretch * j.speaker.warp, j.seed(settings.seed), j.speaker.warp) for j in jobs
    ]
    spoken = engine.synthesize_batch(voice.ident, sentences)
    relabelled = [None] * len(jobs)
    if settings.lexicon == "cmu" and engine.PHONE_MAP is not lexicon.PHONE_MAP:  # flite, festival: CMU already
        relabelled = lexicon.cmu_labels(spoken, [j.text for j in jobs])
    for job, synthesis, cmu in zip(jobs, spoken, relabelled):
        utterance = render(
            synthesis if cmu is None else cmu, job.text, job.speaker.warp,
            engine.PHONE_MAP if cmu is None else lexicon.PHONE_MAP, settings.render,
            job.seed(settings.seed), f"{root / job.path} ({voice.name})",
        )
        write_utterance(root / job.path, utterance.audio, utterance.phones, utterance.words, job.text)
    return len(jobs)


def check_replaceable(out: Path, force: bool) -> None:
    """Raise `UserError` unless `out` is free, or (with `force`) a corpus this generator wrote."""
    if not out.exists():
        return
    if not force:
        raise UserError(f"{out}: already exists. Choose another --out, or replace it with --force")
    if any(out.iterdir()) and not (out / "DOC" / SETTINGS_FILE).is_file():
        raise UserError(
            f"{out}: exists and is not a corpus this generator wrote (no DOC/{SETTINGS_FILE}); "
            "not replacing it even with --force. Remove it yourself or choose another --out"
        )


def _prepare_partial(partial: Path, settings: Settings) -> None:
    """Resume `partial` if it was started with the same settings, else start it afresh."""
    marker = partial / "DOC" / SETTINGS_FILE
    if partial.exists():
        if marker.is_file() and json.loads(marker.read_text()) == settings.as_json():
            for stale in partial.glob("*/DR*/*/.*.tmp*"):  # a killed process' unfinished files
                stale.unlink()
            return
        if not marker.is_file() and any(partial.iterdir()):
            raise UserError(f"{partial}: exists and is not an unfinished corpus of this generator. Remove it")
        shutil.rmtree(partial)
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps(settings.as_json(), indent=2) + "\n")


def _write_docs(root: Path, plan: Plan, settings: Settings) -> None:
    """TIMIT-style DOC files: the speakers and the prompts, plus the text sources' licences.

    SPKRINFO.TXT's Use column is TRN, TST, or DEV for the TEST speakers whose voices
    are held out for development (they live under TEST/, as TIMIT's dev speakers do).
    """
    doc = root / "DOC"
    lines = ["; synthesized speakers: ID  Sex  DR  Use  voice  duration-stretch  warp"]
    for split, speakers in plan.speakers.items():
        for s in speakers:
            use = "TRN" if split == "TRAIN" else "DEV" if s.id in plan.dev else "TST"
            lines.append(f"{s.id}  {s.voice.sex}  {s.voice.region}  {use}  {s.voice.name}  {s.stretch}  {s.warp}")
    (doc / "SPKRINFO.TXT").write_text("\n".join(lines) + "\n")
    prompts = {job.name.lower(): job.text for job in plan.jobs}
    (doc / "PROMPTS.TXT").write_text(
        "".join(f"{t} ({n})\n" for n, t in sorted(prompts.items(), key=lambda nt: (nt[0][:2], int(nt[0][2:]))))
    )
    if "wordnet" in settings.text:
        (doc / "WORDNET-LICENSE.TXT").write_text(
            "Sentences of this corpus are example phrases from WordNet 3.0.\n\n" + text.wordnet_licence()
        )
    if "gcide" in settings.text:
        (doc / "GCIDE-LICENSE.TXT").write_text(text.GCIDE_NOTICE)


def _replace(partial: Path, out: Path) -> None:
    """Rename `partial` to `out`; an old `out` (already cleared by `check_replaceable`) goes."""
    old = out.with_name(out.name + ".old")
    if out.exists():
        out.rename(old)
    partial.rename(out)
    if old.exists():
        shutil.rmtree(old)
