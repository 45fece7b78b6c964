#!/usr/bin/env bash
# Graves, Mohamed & Hinton (2013) on the real TIMIT: train on the 3696 SI/SX training
# utterances, stop early on the 400-utterance dev set, score the 192-utterance core test set
# on 39 folded phones, best path and beam 100.
#
#   bash recipes/timit/run.sh --timit /path/to/TIMIT [--config ctc-3l-250h] [--out DIR] [key=value ...]
#
# Configs: ctc-1l-250h ctc-1l-622h ctc-2l-250h ctc-3l-250h ctc-5l-250h ctc-3l-421h-uni (Table 1).
# Any tree in TIMIT's layout works: the synthesized one too (its own dev/test speakers).
set -euo pipefail
cd "$(dirname "$0")/../.."
source recipes/train_or_resume.sh

TIMIT="" CONFIG=ctc-3l-250h OUT=""
OVERRIDES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --timit) TIMIT=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) OVERRIDES+=("$1"); shift ;;
  esac
done
[ -n "$TIMIT" ] || { echo "error: give --timit /path/to/TIMIT (the folder holding TRAIN/ and TEST/)" >&2; exit 2; }
CONFIG_FILE=recipes/timit/${CONFIG%.yaml}.yaml
[ -f "$CONFIG_FILE" ] || { echo "error: no config $CONFIG_FILE" >&2; exit 2; }
OUT=${OUT:-checkpoints/timit-${CONFIG%.yaml}}

echo "== training $CONFIG_FILE on $TIMIT -> $OUT"
train_or_resume "$OUT" "$CONFIG_FILE" "$TIMIT" ${OVERRIDES[@]+"${OVERRIDES[@]}"}

echo "== core test set, best path"
python decode.py --checkpoint "$OUT" --test-set "$TIMIT" --split core --out "$OUT/eval-core"
echo "== core test set, beam 100"
python decode.py --checkpoint "$OUT" --test-set "$TIMIT" --split core --beam 100 --out "$OUT/eval-core-beam100"
