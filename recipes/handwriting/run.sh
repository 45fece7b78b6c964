#!/usr/bin/env bash
# Handwriting: synthesize text lines in the IAM layout (fonts as writers; the test writers'
# fonts are never seen in training), train the line model, and report CER and WER on the
# held-out writers.
#
#   bash recipes/handwriting/run.sh [section.key=value ...]        # overrides go to train.py
#   IAM=/path/to/IAM bash recipes/handwriting/run.sh               # the real IAM offline lines
#
# Environment: CORPUS, RUN, CONFIG, LINES, STROKE_WRITERS (24). Ctrl-C and run again to pick up where it
# stopped. The shipped model (checkpoints/handwriting-small/README.md):
#   LINES=8000 STROKE_WRITERS=78 CONFIG=recipes/handwriting/augmented.yaml bash recipes/handwriting/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source recipes/train_or_resume.sh
source recipes/corpora.sh

CORPUS=${IAM:-${CORPUS:-data/generated/synth-iam}}
RUN=${RUN:-checkpoints/handwriting-run}
CONFIG=${CONFIG:-recipes/handwriting/lines.yaml}
LINES=${LINES:-3000}
STROKE_WRITERS=${STROKE_WRITERS:-24}

echo "== 1/3 corpus: $CORPUS"
if [ -n "${IAM:-}" ]; then
  echo "already there"
else
  handwriting_corpus "$CORPUS" "$LINES" "$STROKE_WRITERS"
fi

echo "== 2/3 training: $RUN"
train_or_resume "$RUN" "$CONFIG" "$CORPUS" "$@"

echo "== 3/3 decoding the test writers"
python decode.py --checkpoint "$RUN" --test-set "$CORPUS" --split test --out "$RUN/eval-test"
