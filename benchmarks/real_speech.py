"""Real human speech: our model and CMU pocketsphinx on the recordings Debian packages ship.

Every voice the project trains on is synthesized; these recordings are the only real
voices on the machine, so they measure how far synthesized training carries. They are
evaluation data only: never train on them, put their text into a language model or tune
anything on them (/work/shared/DATA.md, "Real human speech").

Sets (read by `read_set`; each is left out, with the reason, when its package is absent):

- librivox (Debian pocketsphinx-testdata): 5 read sentences of Sense and Sensibility;
  transcripts in `librivox/transcription`.
- cards (pocketsphinx-testdata): 5 recordings of playing-card names ("ten of clubs");
  `cards/cards.transcription`.
- raw (pocketsphinx-testdata): `goforward.raw` and `tidigits/dhd.2934z.raw`, headerless
  16-bit 16 kHz PCM. Transcripts: the one-sentence rule `<move>` of `goforward.gram`
  (pocketsphinx's own tests decode the file with it), and the TIDIGITS file name
  (`2934z` = "two nine three four zero", as `tidigits/tidigits.lsn` spells such names).
- alsa (alsa-utils): 8 spoken channel names, 48 kHz; the file name is the transcript,
  `Front_Center` -> "front center". `Noise.wav` is noise, left out.
- asterisk (asterisk-core-sounds-en-wav; the text from asterisk-core-sounds-en): telephone
  prompts, 8 kHz, one voice; transcripts in `core-sounds-en.txt`, "name: text"; only
  prompts whose text is words (below): 544 of 568.

Text normalisation (`normalize_words`), the same for references and both systems'
hypotheses: annotations in brackets, angle brackets or parentheses go ("at [@]" ->
"at", "(simple tone sound plays)"); a digit standing alone is spelled as the word it is
spoken as ("press 1" -> "press one", 0 -> "zero"); then `asr.tokens.normalize_speech_text`
(lower case, accents and punctuation out except apostrophes inside words, hyphens become
spaces); the titles mr, mrs and dr are spelled out (pocketsphinx's dictionary writes "mr"
where the reader said "mister"). Acronyms stay as written ("iax", "pbx").
An asterisk prompt is kept only if its text is words after that: prompts with
numbers of more than one digit ("dial 500", "28.8 kilobit", "H.323", "3D") or spoken
symbols ("press * to", "#") are left out, because how they were read is not written
down; so are prompts that are annotation only ("[ascending tones]", silences).

Scoring: word error rate per set, corpus-level (all edits of the set over its reference
words, `asr.metrics`, jiwer's alignment), and over all sets together. A phone model
(tokens.kind == "phones") gives no words: its WER is n/a, its speed is still measured.

Speed: real-time factor = processing seconds / audio seconds, on one thread
(`torch.set_num_threads(1)`; pocketsphinx is single-threaded). Each file is read and
resampled to 16 kHz (the rate of both systems) before the clock starts, so both
systems are timed on recognition of the same samples: our front end + network +
decoder, pocketsphinx's whole decoder. CPU time (`time.process_time`) is the figure
given; wall-clock time is in the JSON. Our model is warmed up on one second of noise
first (the LSTM kernel is compiled on first use); pocketsphinx is not, because its
running cepstral mean carries from one utterance to the next and would be changed.

pocketsphinx: PyPI `pocketsphinx` 5.x (`pip install '.[bench]'`) with the US English
acoustic model, dictionary and language model it bundles; one `Decoder(samprate=16000)`
for the whole run, each file one `process_raw(..., full_utt=True)` utterance.

Run: python benchmarks/real_speech.py [--checkpoint checkpoints/synth-small] \
        [--sets librivox,cards,raw,alsa,asterisk] [--systems ours,pocketsphinx] [--limit N] [--json OUT]
"""

from __future__ import annotations

import argparse
import gzip
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from asr._lstm.extension import cpu_model
from asr.atomic import atomic_path
from asr.audio import RawFormat, load_audio
from asr.cli import run
from asr.errors import UserError
from asr.metrics import ErrorCounts, word_errors
from asr.pretrained import default_checkpoint
from asr.tokens import normalize_speech_text

POCKETSPHINX_DATA = Path("/usr/share/pocketsphinx/test/data")
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

SETS = ("librivox", "cards", "raw", "alsa", "asterisk")
SYSTEMS = ("ours", "pocketsphinx")
RATE = 16000  # pocketsphinx's model rate, and the shipped model's

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TIDIGITS_CODES = {**{str(d): w for d, w in enumerate(DIGIT_WORDS) if d}, "z": "zero", "o": "oh"}
_ANNOTATION = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)")
_LONE_DIGIT = re.compile(r"(?<![\w.])\d(?![\w]|\.\d)")
_WORDS_ONLY = re.compile(r"[A-Za-z\s.,;:!?'\"-]*[A-Za-z][A-Za-z\s.,;:!?'\"-]*")
_EDGE_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")
# titles a pronouncing dictionary spells short (pocketsphinx writes "mr" where the speaker said "mister")
TITLES = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


@dataclass(frozen=True)
class Recording:
    set: str
    name: str
    path: Path
    transcript: str  # normalised words (`normalize_words`)
    raw: RawFormat | None = None  # how to read a headerless file


class SetMissing(UserError):
    """A set's Debian package is not installed."""


# ---- text ------------------------------------------------------------------------------------


def spoken_text(text: str) -> str:
    """Annotations out, lone digits spelled: the text as it was read aloud, before normalising."""
    text = _ANNOTATION.sub(" ", text)
    return _LONE_DIGIT.sub(lambda m: f" {DIGIT_WORDS[int(m.group())]} ", text)


def normalize_words(text: str) -> str:
    """References and hypotheses alike: `spoken_text`, then lower case without punctuation."""
    text = normalize_speech_text(spoken_text(text))
    return " ".join(TITLES.get(word, word) for word in _EDGE_APOSTROPHE.sub(" ", text).split())


def is_word_transcript(text: str) -> bool:
    """Whether the text, once `spoken_text`, is words only (no numbers, symbols or bare annotations)."""
    return bool(_WORDS_ONLY.fullmatch(spoken_text(text)))


def tidigits_words(name: str) -> str:
    """The digits a TIDIGITS file name says: 'dhd.2934z' -> 'two nine three four zero'.

    The code after the last dot spells the digits (1-9, z = zero, o = oh); a final
    'a' or 'b' marks the take, as in the corpus's own 'man.ah.2934za'.
    """
    code = name.rsplit(".", 1)[-1].rstrip("ab")
    if not code or any(c not in TIDIGITS_CODES for c in code):
        raise ValueError(f"{name!r} is not a TIDIGITS digit-string name")
    return " ".join(TIDIGITS_CODES[c] for c in code)


# ---- sets --------------------------------------------------------------------------------------


def _require(path: Path, package: str) -> None:
    if not path.exists():
        raise SetMissing(f"{path}: not found; the set comes from the Debian package {package}: "
                         f"apt-get install {package} (install.sh installs it)")


def _sphinx_transcription(folder: Path, listing: str, set_name: str) -> list[Recording]:
    """'<s> words </s> (id)' lines: pocketsphinx's test transcripts, one per `id`.wav."""
    out = []
    for line in (folder / listing).read_text().splitlines():
        found = re.fullmatch(r"\s*(.*?)\s*\(([^()]+)\)\s*", line)
        if found:
            words = found.group(1).replace("<s>", " ").replace("</s>", " ")
            out.append(Recording(set_name, found.group(2), folder / f"{found.group(2)}.wav", normalize_words(words)))
    return sorted(out, key=lambda r: r.name)


def read_librivox(root: Path | None = None) -> list[Recording]:
    root = root or POCKETSPHINX_DATA
    _require(root / "librivox", "pocketsphinx-testdata")
    return _sphinx_transcription(root / "librivox", "transcription", "librivox")


def read_cards(root: Path | None = None) -> list[Recording]:
    root = root or POCKETSPHINX_DATA
    _require(root / "cards", "pocketsphinx-testdata")
    return _sphinx_transcription(root / "cards", "cards.transcription", "cards")


def grammar_sentence(path: Path, rule: str) -> str:
    """The words of a JSGF rule that is one fixed sentence (`public <rule> = words;`)."""
    found = re.search(rf"public\s+<{re.escape(rule)}>\s*=\s*([^;]*);", path.read_text())
    if not found or not re.fullmatch(r"[\w\s']+", found.group(1)):
        raise ValueError(f"{path}: no one-sentence rule <{rule}>")
    return " ".join(found.group(1).split())


def read_raw(root: Path | None = None) -> list[Recording]:
    root = root or POCKETSPHINX_DATA
    _require(root / "goforward.raw", "pocketsphinx-testdata")
    pcm = RawFormat(RATE, "PCM_16")
    digits = root / "tidigits" / "dhd.2934z.raw"
    return [
        # pocketsphinx's own tests decode goforward.raw with this grammar: the rule is the sentence
        Recording("raw", "goforward", root / "goforward.raw",
                  normalize_words(grammar_sentence(root / "goforward.gram", "move")), pcm),
        Recording("raw", "tidigits/dhd.2934z", digits, tidigits_words(digits.stem), pcm),
    ]


def read_alsa(root: Path | None = None) -> list[Recording]:
    root = root or ALSA_SOUNDS
    _require(root, "alsa-utils")
    # Noise.wav is pink noise for testing speakers: its name is not what it says
    return [Recording("alsa", p.stem, p, normalize_words(p.stem.replace("_", " ")))
            for p in sorted(root.glob("*.wav")) if p.stem != "Noise"]


def asterisk_transcripts(path: Path | None = None) -> dict[str, str]:
    """core-sounds-en.txt ('name: text' lines, ';' comments; gzipped as Debian ships it), as written."""
    path = Path(path or ASTERISK_TEXT)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        pairs = (line.split(":", 1) for line in lines if ":" in line and not line.startswith(";"))
        return {name.strip(): text.strip() for name, text in pairs}


def read_asterisk(root: Path | None = None, text: Path | None = None) -> list[Recording]:
    root, text = root or ASTERISK_SOUNDS, text or ASTERISK_TEXT
    _require(root, "asterisk-core-sounds-en-wav")
    _require(text, "asterisk-core-sounds-en")
    transcripts = asterisk_transcripts(text)
    out = []
    for path in sorted(root.rglob("*.wav")):
        name = path.relative_to(root).with_suffix("").as_posix()
        if name in transcripts and is_word_transcript(transcripts[name]):
            out.append(Recording("asterisk", name, path, normalize_words(transcripts[name])))
    return out


READERS = {"librivox": read_librivox, "cards": read_cards, "raw": read_raw, "alsa": read_alsa,
           "asterisk": read_asterisk}


def read_set(name: str) -> list[Recording]:
    if name not in READERS:
        raise UserError(f"unknown set {name!r}; choose from {', '.join(SETS)}")
    return READERS[name]()


# ---- systems -----------------------------------------------------------------------------------


class Ours:
    name = "ours"

    def __init__(self, checkpoint):
        from asr.transcribe import Transcriber

        self.transcriber = Transcriber.from_checkpoint(checkpoint)
        self.rate = self.transcriber.config.features.sample_rate
        self.gives_words = self.transcriber.tokens.kind == "chars"
        # the first call compiles or loads the LSTM kernel: not part of any file's time
        self.transcriber.transcribe(0.01 * torch.randn(self.rate, generator=torch.Generator().manual_seed(0)),
                                    self.rate)

    def recognize(self, waveform: torch.Tensor) -> str:
        return self.transcriber.transcribe(waveform, self.rate).text


class PocketSphinx:
    name = "pocketsphinx"
    rate = RATE
    gives_words = True

    def __init__(self):
        try:
            from pocketsphinx import Config, Decoder
        except ImportError:
            raise UserError("pocketsphinx is not installed: pip install pocketsphinx "
                            "(or pip install '.[bench]'), or leave it out: --systems ours") from None
        self.decoder = Decoder(Config(samprate=RATE, loglevel="FATAL"))

    def recognize(self, waveform: torch.Tensor) -> str:
        pcm = (waveform * 32768).round().clamp(-32768, 32767).to(torch.int16).numpy().tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis else ""


def pocketsphinx_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("pocketsphinx")
    except Exception:
        return None


# ---- scoring -----------------------------------------------------------------------------------


def score(references: list[str], hypotheses: list[str]) -> ErrorCounts:
    """Corpus-level word errors: every edit over all reference words (texts already normalised)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    return sum((word_errors(r, h, normalize=False) for r, h in zip(references, hypotheses)), ErrorCounts())


@dataclass
class Tally:
    """One system on one set (or all): what it said, and how long it took."""

    references: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    audio_seconds: float = 0.0

    def add(self, other: "Tally") -> None:
        self.references += other.references
        self.hypotheses += other.hypotheses
        self.cpu_seconds += other.cpu_seconds
        self.wall_seconds += other.wall_seconds
        self.audio_seconds += other.audio_seconds

    def summary(self, gives_words: bool) -> dict:
        out = {"wer": None, "rtf": self.cpu_seconds / self.audio_seconds if self.audio_seconds else None,
               "rtf_wall": self.wall_seconds / self.audio_seconds if self.audio_seconds else None,
               "cpu_seconds": self.cpu_seconds, "wall_seconds": self.wall_seconds}
        if gives_words:
            counts = score(self.references, self.hypotheses)
            out.update(counts.to_dict(), wer=counts.rate)
        return out


# ---- the run -----------------------------------------------------------------------------------


def choose(text: str | None, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [c.strip() for c in (text or ",".join(allowed)).split(",") if c.strip()]
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        raise UserError(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(allowed)}")
    return chosen


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def print_table(results: dict, systems: list[str]) -> None:
    header = f"{'set':<10} {'files':>5} {'audio s':>8} {'words':>6}"
    for system in systems:
        header += f"  {system + ' WER':>17} {system + ' RTF':>17}"
    print(header)
    for name, row in results.items():
        line = f"{name:<10} {row['files']:>5} {row['audio_seconds']:>8.1f} {row['words']:>6}"
        for system in systems:
            numbers = row["systems"][system]
            line += f"  {percent(numbers['wer']):>17} {numbers['rtf']:>17.3f}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="our model: a run folder or .pt file (default: the shipped "
                        "synth-small, or $ASR_CHECKPOINT)")
    parser.add_argument("--sets", help=f"comma-separated, from {','.join(SETS)} (default: all that are installed)")
    parser.add_argument("--systems", default="ours,pocketsphinx", help="comma-separated: ours, pocketsphinx")
    parser.add_argument("--limit", type=int, default=0, help="the first N recordings of each set only")
    parser.add_argument("--json", help="write the numbers (and every hypothesis) to this file")
    args = parser.parse_args(argv)
    systems = choose(args.systems, SYSTEMS, "system")

    recordings: list[Recording] = []
    for name in choose(args.sets, SETS, "set"):
        try:
            found = read_set(name)
        except SetMissing as missing:
            if args.sets:  # asked for by name: an error; by default: left out, saying why
                raise
            print(f"left out {name}: {missing}")
            continue
        recordings += found[: args.limit or None]
    if not recordings:
        raise UserError("no recordings to transcribe: install the Debian packages (install.sh) or choose --sets")

    torch.set_num_threads(1)
    checkpoint = args.checkpoint or default_checkpoint()
    recognizers = [Ours(checkpoint) if s == "ours" else PocketSphinx() for s in systems]
    tallies = {(r.set, s): Tally() for r in recordings for s in systems}
    utterances = []
    for recording in tqdm(recordings, desc="transcribing", unit="file"):
        said = {"set": recording.set, "name": recording.name, "reference": recording.transcript}
        for recognizer in recognizers:
            waveform = load_audio(recording.path, recognizer.rate, raw=recording.raw)
            wall, cpu = time.perf_counter(), time.process_time()
            text = recognizer.recognize(waveform)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            tally = tallies[recording.set, recognizer.name]
            tally.references.append(recording.transcript)
            tally.hypotheses.append(normalize_words(text) if recognizer.gives_words else text)
            tally.cpu_seconds += cpu
            tally.wall_seconds += wall
            tally.audio_seconds += len(waveform) / recognizer.rate
            said[recognizer.name] = tally.hypotheses[-1]
        utterances.append(said)

    results = {}
    overall = {s: Tally() for s in systems}
    for name in dict.fromkeys(r.set for r in recordings):
        first = tallies[name, systems[0]]
        results[name] = {"files": len(first.references), "audio_seconds": first.audio_seconds,
                         "words": sum(len(t.split()) for t in first.references), "systems": {}}
        for recognizer in recognizers:
            tally = tallies[name, recognizer.name]
            overall[recognizer.name].add(tally)
            results[name]["systems"][recognizer.name] = tally.summary(recognizer.gives_words)
    first = overall[systems[0]]
    results["all"] = {"files": len(first.references), "audio_seconds": first.audio_seconds,
                      "words": sum(len(t.split()) for t in first.references),
                      "systems": {r.name: overall[r.name].summary(r.gives_words) for r in recognizers}}

    print(f"CPU: {cpu_model()}, one thread; torch {torch.__version__}"
          + (f", pocketsphinx {pocketsphinx_version()}" if "pocketsphinx" in systems else ""))
    if "ours" in systems:
        kind = recognizers[systems.index("ours")].transcriber.tokens.kind
        print(f"ours: {checkpoint} ({kind}{'' if kind == 'chars' else ': no words, WER n/a'})")
    print("WER: word error rate over the set's reference words; RTF: CPU seconds / audio seconds")
    print_table(results, systems)

    if args.json:
        from asr.transcribe import json_text

        report = {"cpu": cpu_model(), "threads": 1, "torch": torch.__version__,
                  "pocketsphinx": pocketsphinx_version() if "pocketsphinx" in systems else None,
                  "checkpoint": str(checkpoint), "systems": systems, "limit": args.limit,
                  "sets": results, "utterances": utterances}
        with atomic_path(args.json) as temporary:
            temporary.write_text(json_text(report, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    run(main)
