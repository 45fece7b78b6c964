"""``python -m asr.lm``: train an n-gram on a corpus's transcripts and write it as ARPA.

    python -m asr.lm --data CORPUS --tokens timit61 --order 2 --out phones.arpa
"""

from __future__ import annotations

from collections.abc import Sequence

from asr.cli import run
from asr.lm.kneser_ney import train_ngram


def transcripts_as_symbols(utterances, tokens_name: str) -> list[list[str]]:
    """Training transcripts as LM symbol sequences: phones, characters (space between words) or words."""
    from asr.tokens import normalize_speech_text, token_set  # noqa: PLC0415

    if tokens_name == "timit61":
        return [u.transcript("phones").split() for u in utterances]
    if tokens_name == "words":
        return [normalize_speech_text(u.text).split() for u in utterances]
    tokens = token_set(tokens_name, (u.text for u in utterances))
    return [tokens.labels(u.text) for u in utterances]


def main(argv: Sequence[str] | None = None) -> None:
    import argparse  # noqa: PLC0415

    from asr.corpora import open_corpus  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m asr.lm", description=(
        "Train an interpolated Kneser-Ney n-gram on a corpus's training transcripts and write it as ARPA. "
        "Use it with decode.py --lm, and tune its weight with decode.py --tune-lm."))
    parser.add_argument("--data", required=True, help="corpus (TIMIT tree, LibriSpeech, manifest, IAM)")
    parser.add_argument("--split", default="train", help="split whose transcripts train it (default: train)")
    parser.add_argument("--tokens", default="timit61", choices=("timit61", "speech-chars", "chars", "words"),
                        help="symbols: TIMIT phones, speech characters, characters as written, or words")
    parser.add_argument("--order", type=int, default=2, help="n-gram order (2: the phone bigram of TIMIT work)")
    parser.add_argument("--out", required=True, help="ARPA file to write")
    args = parser.parse_args(argv)
    corpus = open_corpus(args.data)
    sequences = transcripts_as_symbols(corpus.read(args.split), args.tokens)
    lm = train_ngram(sequences, args.order)
    lm.write_arpa(args.out)
    sizes = ", ".join(f"{len(level)} {k + 1}-grams" for k, level in enumerate(lm.ngrams))
    print(f"{args.out}: {args.order}-gram over {args.tokens} from {len(sequences)} transcripts ({sizes})")


def cli() -> None:
    """The `asr-lm` command: `main` with one-line errors and exit codes."""
    run(main)
