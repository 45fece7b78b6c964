"""Write a TIMIT-layout corpus spoken by Debian's speech synthesizers.

    python -m data.synth_timit --out data/generated/synth-timit --utterances 2000

The corpus has TIMIT's layout and rules (``TRAIN|TEST/DR<n>/<SPEAKER>/<UTT>``
with NIST SPHERE audio and PHN/WRD/TXT labels in TIMIT's 61 phones; SA, SX and
SI sentences; test speakers and sentences kept out of training), and its phone
and word timings are the synthesizers' own. See data/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from asr.atomic import write_text
from asr.errors import UserError
from data.synth import lexicon, text
from data.synth.generate import Settings, check_replaceable, check_voices, generate
from data.synth.plan import make_plan
from data.synth.render import RenderSettings
from data.synth.voices import (
    DEFAULT_VOICES,
    DEV_VOICES,
    STRETCHES,
    TEST_VOICES,
    VOICES,
    WARPS,
    held_out,
    select_voices,
    speakers_of,
)

DEFAULT_OUT = Path("data/generated/synth-timit")


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def parser() -> argparse.ArgumentParser:
    grid = len(STRETCHES) * len(WARPS)
    p = argparse.ArgumentParser(
        prog="python -m data.synth_timit",
        description=__doc__.split("\n\n")[0],
        epilog=(
            "examples:\n"
            "  python -m data.synth_timit --utterances 300            # a demo, about a minute\n"
            "  python -m data.synth_timit --utterances 20000 --force  # a real experiment\n"
            "  python -m data.synth_timit --voices flite,festival:kal_diphone --speakers-per-voice 3"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
        help="where the corpus goes, TRAIN/ TEST/ DOC/ inside (default: %(default)s)",
    )
    p.add_argument(
        "--utterances", type=int, default=2000, metavar="N",
        help="SI and SX utterances, TRAIN and TEST together; every speaker also reads "
        "SA1 and SA2 on top (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="S",
        help="the same seed gives a byte-identical corpus (default: %(default)s)",
    )
    p.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, metavar="J",
        help="processes synthesizing in parallel; does not change the output (default: %(default)s, the CPUs)",
    )
    p.add_argument(
        "--test-fraction", type=float, default=0.3, metavar="F",
        help="with no held-out voice among --voices: the share of each voice's speakers held out "
        "in TEST (default: %(default)s)",
    )
    p.add_argument(
        "--test-voices", type=_comma_list, default=TEST_VOICES, metavar="LIST",
        help="voices held out for TEST: none of their speakers, nor any voice of the same person, "
        "speaks in TRAIN (default: %(default)s)",
    )
    p.add_argument(
        "--dev-voices", type=_comma_list, default=DEV_VOICES, metavar="LIST",
        help="voices held out for development, under TEST/ with Use DEV in DOC/SPKRINFO.TXT "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--speakers-per-voice", type=int, default=grid, metavar="K",
        help=f"speakers made from each voice, 2-{grid}, out of duration stretch {STRETCHES} x "
        f"warp {WARPS} (default: %(default)s)",
    )
    p.add_argument(
        "--voices", type=_comma_list, default=DEFAULT_VOICES, metavar="LIST",
        help="comma-separated voices, engine names (flite, festival, espeak) for all their voices, or "
        "espeak accents (espeak:en-US) for all their variants (default: flite, festival and 16 espeak "
        "voices; see --list-voices)",
    )
    p.add_argument(
        "--text", type=_comma_list, default=text.DEFAULT_SOURCES, metavar="LIST",
        help="sentence sources: wordnet (WordNet 3.0 examples), bible (King James Bible), gcide "
        "(quotations in GCIDE), devil (The Devil's Dictionary) (default: all)",
    )
    p.add_argument(
        "--lm-text", type=Path, metavar="FILE",
        help="write the TRAIN sentences of --text (never a TEST one), one a line, to FILE for a "
        "language model, then exit",
    )
    p.add_argument(
        "--lexicon", choices=lexicon.CHOICES, default="engine",
        help="phone labels: each engine's own (default), or cmu: espeak-ng's words labelled from the "
        "CMU lexicon as flite and festival label theirs (data/synth/lexicon.py)",
    )
    p.add_argument("--no-sa", dest="dialect_sentences", action="store_false", help="leave out SA1 and SA2")
    p.add_argument(
        "--no-closures", dest="closures", action="store_false",
        help="label a stop as one segment instead of TIMIT's closure + release (bcl b, tcl ch, ...)",
    )
    p.add_argument(
        "--noise-db", type=float, default=-60.0, metavar="DB",
        help="level of the white noise floor, dB relative to full scale (default: %(default)s)",
    )
    p.add_argument("--no-noise", action="store_true", help="no noise floor: silences are digital zeros")
    p.add_argument("--force", action="store_true", help="replace DIR if it is a corpus this command wrote")
    p.add_argument("--list-voices", action="store_true", help="list the voices and their speakers, then exit")
    return p


def list_voices() -> str:
    lines = []
    held = held_out(VOICES, TEST_VOICES, DEV_VOICES)
    for voice in VOICES:
        ids = [s.id for s in speakers_of(voice)]
        default = "default" if voice.name in DEFAULT_VOICES else ""
        lines.append(
            f"{voice.name:34} {voice.sex}  DR{voice.region}  {ids[0]}..{ids[-1]}  "
            f"{held.get(voice.name, 'TRAIN'):5}  {default}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list_voices:
        print(list_voices())
        return 0
    try:
        if args.lm_text:
            sentences = text.training_text(args.text)
            write_text(args.lm_text, "".join(t + "\n" for t in sentences))
            print(f"{args.lm_text}: {len(sentences)} TRAIN sentences of {', '.join(args.text)}")
            return 0
        if args.utterances < 1:
            raise UserError(f"--utterances {args.utterances}: ask for at least one")
        check_replaceable(args.out, args.force)
        voices = select_voices(args.voices)
        check_voices(voices)
        settings = Settings(
            voices=tuple(v.name for v in voices),
            text=args.text,
            utterances=args.utterances,
            seed=args.seed,
            test_fraction=args.test_fraction,
            speakers_per_voice=args.speakers_per_voice,
            dialect_sentences=args.dialect_sentences,
            render=RenderSettings(args.closures, None if args.no_noise else args.noise_db),
            test_voices=args.test_voices,
            dev_voices=args.dev_voices,
            lexicon=args.lexicon,
        )
        sentences = text.load_sentences(args.text)
        plan = make_plan(
            voices, sentences, args.utterances, args.test_fraction, args.speakers_per_voice,
            args.seed, args.dialect_sentences, held_out(voices, args.test_voices, args.dev_voices),
        )
        report = generate(args.out, plan, settings, args.jobs, args.force)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: run the same command again to resume "
            f"(finished utterances are kept in {args.out}.partial)",
            file=sys.stderr,
        )
        return 130
    s = report.summary
    total = sum(s.utterances.values())
    print(
        f"{args.out}: {s.utterances['TRAIN']} TRAIN utterances ({len(s.speakers['TRAIN'])} speakers), "
        f"{s.utterances['TEST']} TEST ({len(s.speakers['TEST'])} speakers), "
        f"{s.seconds / 3600:.2f} h of audio"
    )
    if report.generated:
        print(
            f"synthesized {report.generated} utterances in {report.wall_seconds:.1f} s: "
            f"{report.generated / report.wall_seconds:.1f} utterances/s, "
            f"{s.seconds * report.generated / total / report.wall_seconds:.0f} s of audio per second"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
