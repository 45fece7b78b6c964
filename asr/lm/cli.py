"""``python -m asr.lm``: train an n-gram on a corpus's training transcripts and write it as ARPA.

    python -m asr.lm --data CORPUS --tokens timit61 --order 2 --out phones.arpa
    python -m asr.lm --data CORPUS --tokens chars --words --order 3 --prune 0 1 1 --out RUN/lm.arpa.gz
    python -m asr.lm --text SENTENCES.txt --tokens words --order 3 --prune 0 1 1 --out words.arpa.gz

Only the training split is read unless ``--split`` says otherwise: dev and test
transcripts (and the text of recordings scored later) must never reach the LM,
or the scores it helps to would be flattered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from asr.cli import run
from asr.errors import UserError
from asr.lm.kneser_ney import train_ngram


def transcripts_as_symbols(utterances, tokens_name: str, words: bool = False) -> list[list[str]]:
    """Training transcripts as LM symbol sequences: phones, characters (space between words) or,
    with `words`, the words those characters spell (as a character model of that token set writes
    them: lower-cased for ``speech-chars``, as written for ``chars``). ``words`` as `tokens_name`
    is short for ``speech-chars`` with `words`."""
    from asr.tokens import token_set  # noqa: PLC0415

    if tokens_name == "words":
        tokens_name, words = "speech-chars", True
    if tokens_name == "timit61":
        if words:
            raise UserError("--words needs a character token set (--tokens speech-chars or chars): "
                            "a phone model emits no words")
        return [u.transcript("phones").split() for u in utterances]
    tokens = token_set(tokens_name, (u.text for u in utterances))
    labels = [tokens.labels(u.text) for u in utterances]
    return [[w for w in "".join(chars).split(" ") if w] for chars in labels] if words else labels


class Sentence(NamedTuple):
    """A line of a --text file, read as the transcript of an utterance."""
    text: str


def read_sentences(path: str) -> list[Sentence]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"--text {path}: cannot read it ({error}); give a UTF-8 file of sentences, "
                        "one a line") from None
    sentences = [Sentence(line.strip()) for line in lines if line.strip()]
    if not sentences:
        raise UserError(f"--text {path}: no sentences in it; give one sentence a line")
    return sentences


def main(argv: Sequence[str] | None = None) -> None:
    import argparse  # noqa: PLC0415

    from asr.corpora import open_corpus  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m asr.lm", description=(
        "Train an interpolated Kneser-Ney n-gram on a corpus's TRAINING transcripts (--split train, the "
        "default: dev and test text must never enter it) and write it as ARPA (.arpa, or gzipped .arpa.gz). "
        "Use it with decode.py --lm, tune its weight with decode.py --tune-lm, and store it with the model "
        "with --save-lm-settings."))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="corpus (TIMIT tree, LibriSpeech, manifest, IAM)")
    source.add_argument("--text", help="a UTF-8 file of training sentences, one a line (e.g. from "
                                       "python -m data.synth_timit --lm-text); never test text")
    parser.add_argument("--split", default="train", help="split whose transcripts train it (default: train; "
                                                         "never a split you score on)")
    parser.add_argument("--tokens", choices=("timit61", "speech-chars", "chars", "words"),
                        help="symbols: TIMIT phones, speech characters, characters as written, or words "
                             "(short for speech-chars --words); default: the corpus's own (timit61 for a TIMIT "
                             "tree, chars for handwriting, speech-chars otherwise)")
    parser.add_argument("--words", action="store_true",
                        help="a word-level model for a character model: the words the --tokens characters spell")
    parser.add_argument("--order", type=int, default=2, help="n-gram order (2: the phone bigram of TIMIT work)")
    parser.add_argument("--prune", type=int, nargs="+", default=[], metavar="COUNT",
                        help="count cut-offs per order, unigrams first (always 0), the last repeating: "
                             "--prune 0 1 drops the bigrams and longer seen once (as KenLM's --prune)")
    parser.add_argument("--out", required=True, help="ARPA file to write (.gz: gzipped)")
    args = parser.parse_args(argv)
    if args.text is not None:
        if args.tokens in (None, "timit61"):
            raise UserError("--text holds no phone labels: give --tokens speech-chars, chars or words")
        source, tokens, utterances = args.text, args.tokens, read_sentences(args.text)
    else:
        corpus = open_corpus(args.data)
        if args.split not in corpus.splits:
            raise UserError(f"{args.data}: no split {args.split!r}; it has {', '.join(corpus.splits)}")
        source, tokens, utterances = f"{args.split} transcripts", args.tokens or corpus.default_tokens, \
            corpus.read(args.split)
    sequences = transcripts_as_symbols(utterances, tokens, args.words)
    lm = train_ngram(sequences, args.order, prune=args.prune)
    lm.write_arpa(args.out)
    sizes = ", ".join(f"{len(level)} {k + 1}-grams" for k, level in enumerate(lm.ngrams))
    symbols = "words" if args.words or tokens == "words" else tokens
    print(f"{args.out}: {args.order}-gram over {symbols} from {len(sequences)} sentences of {source} "
          f"({sizes}; {os.path.getsize(args.out) / 1024:.0f} KiB)")


def cli() -> None:
    """The `asr-lm` command: `main` with one-line errors and exit codes."""
    run(main)
