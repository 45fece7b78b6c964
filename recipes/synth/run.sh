#!/usr/bin/env bash
# The main job: synthesize a TIMIT-layout corpus, train the small model on it, decode its
# test speakers and print PER. On a 2-core CPU it finishes in under 20 minutes.
#
#   bash recipes/synth/run.sh [section.key=value ...]      # overrides go to train.py
#
# Environment: CORPUS (where the corpus goes), RUN (the run folder), CONFIG, UTTERANCES.
# Every step can be stopped with Ctrl-C and picks up where it was on the next run.
set -euo pipefail
cd "$(dirname "$0")/../.."
source recipes/train_or_resume.sh
source recipes/corpora.sh

CORPUS=${CORPUS:-data/generated/synth-timit}
RUN=${RUN:-checkpoints/synth-run}
CONFIG=${CONFIG:-recipes/synth/small.yaml}
UTTERANCES=${UTTERANCES:-2000}

echo "== 1/3 corpus: $CORPUS"
synth_corpus "$CORPUS" "$UTTERANCES"

echo "== 2/3 training: $RUN"
train_or_resume "$RUN" "$CONFIG" "$CORPUS" "$@"

echo "== 3/3 decoding the test speakers"
python decode.py --checkpoint "$RUN" --test-set "$CORPUS" --split test --out "$RUN/eval-test"
