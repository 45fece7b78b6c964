"""festival 2.5 in batches: one ``festival -b script.scm`` speaks many sentences in one voice.

Timings come from festival's own utterance structure (Taylor, Black & Caley,
"The architecture of the Festival speech synthesis system", 1998): the Segment
relation's ``end`` feature, and for each word the start of its first segment
and the end of its last (through SylStructure); words are tied to the
whitespace tokens of the text through the Token relation. The HTS voice
(32 kHz) takes its speaking rate from hts_engine's ``-r`` option, the diphone
voices from ``Duration_Stretch``.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import soundfile

from asr.errors import UserError
from data.synth.labels import ARPABET_TO_TIMIT
from data.synth.synthesis import Synthesis

PHONE_MAP = ARPABET_TO_TIMIT
VOICE_FOLDERS = "/usr/share/festival/voices/*/{}"
APT_PACKAGES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}

# Writes one line per segment ("S name end") and per word ("W token-index start end").
_PRELUDE = r"""
(define (synth-timit-dump utt file)
  (let ((fd (fopen file "w")) (i 0) (tok (utt.relation.first utt 'Token)))
    (while tok  ; top-level Token items only: utt.relation.items would add their words
      (item.set_feat tok "synth_timit_token" i)
      (set! i (+ i 1))
      (set! tok (item.next tok)))
    (mapcar (lambda (s) (format fd "S %s %f\n" (item.name s) (item.feat s "end")))
            (utt.relation.items utt 'Segment))
    (mapcar (lambda (w)
              (format fd "W %s %f %f\n" (item.feat w "R:Token.parent.synth_timit_token")
                      (item.feat w "R:SylStructure.daughter1.daughter1.R:Segment.segment_start")
                      (item.feat w "R:SylStructure.daughtern.daughtern.R:Segment.end")))
            (utt.relation.items utt 'Word))
    (fclose fd)))
(define (synth-timit-say text stretch wav lab)
  (Parameter.set 'Duration_Stretch stretch)
  (if (boundp 'synth-timit-hts-params)
      (set! hts_engine_params
            (append synth-timit-hts-params (list (list "-r" (/ 1.0 stretch))))))
  (let ((utt (utt.synth (eval (list 'Utterance 'Text text)))))
    (utt.save.wave utt wav 'riff)
    (synth-timit-dump utt lab)))
"""


def check_voice(ident: str) -> None:
    """Raise `UserError` naming the apt packages if festival or its voice `ident` is missing."""
    package = APT_PACKAGES[ident]
    if shutil.which("festival") is None:
        raise UserError(
            f"festival: the festival speech synthesizer is not installed. Install it "
            f"(apt-get install festival {package}) or leave festival voices out with --voices"
        )
    if not glob.glob(VOICE_FOLDERS.format(ident)):
        raise UserError(
            f"{VOICE_FOLDERS.format(ident)}: festival's voice {ident!r} is not installed. "
            f"Install it (apt-get install {package}) or leave it out with --voices"
        )


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesize_batch(ident: str, sentences: Sequence[tuple[str, float, int, float]]) -> list[Synthesis]:
    """Each (text, duration stretch, seed, warp) of `sentences` in voice `ident`, by one festival process.

    festival's voices are deterministic: the seed is not needed.
    """
    with tempfile.TemporaryDirectory(prefix="synth-timit-festival-") as folder:
        work = Path(folder)
        lines = [_PRELUDE, f"(voice_{ident})"]
        if "hts" in ident:
            lines.append("(set! synth-timit-hts-params hts_engine_params)")
        for i, (text, stretch, *_) in enumerate(sentences):
            lines.append(f'(synth-timit-say {_scheme_string(text)} {stretch!r} "{i}.wav" "{i}.lab")')
        (work / "batch.scm").write_text("\n".join(lines) + "\n")
        run = subprocess.run(
            ["festival", "-b", "batch.scm"], cwd=work, capture_output=True, text=True
        )
        results = []
        for i in range(len(sentences)):
            if not (work / f"{i}.lab").is_file():
                raise RuntimeError(
                    f"festival (voice {ident}) stopped before sentence {sentences[i][0]!r}:\n"
                    f"{run.stderr.strip() or run.stdout.strip()}"
                )
            audio, rate = soundfile.read(work / f"{i}.wav", dtype="int16")
            results.append(Synthesis(audio, rate, *_read_labels(work / f"{i}.lab")))
        return results


def _read_labels(path: Path) -> tuple[list[tuple[str, float]], list[tuple[int, float, float]]]:
    phones, words = [], []
    for line in path.read_text().splitlines():
        kind, *fields = line.split()
        if kind == "S":
            phones.append((fields[0], float(fields[1])))
        else:
            words.append((int(fields[0]), float(fields[1]), float(fields[2])))
    return phones, words
