#!/usr/bin/env bash
# Issue 12's study: every recurrent cell on the synthesized phone task and on handwriting, all at
# the recipe network's number of weights (recipes/variants/sizes.py), three seeds each; then the
# report (recipes/variants/report.py). recipes/variants/README.md has the design and the results.
#
#   JOBS=2 nohup recipes/variants/run.sh > ~/variants.log 2>&1 &   # the full study: hours to days on 2 cores
#   SMALL=1 recipes/variants/run.sh /tmp/variants-small          # the small grid: minutes
#
# ROOT (default recipes/variants/study) gets corpora/, grid.json, TASK/sizes.json and one run folder
# per (task, cell, seed), TASK/CELL/seedN/: study.yaml (its config), the run (train.py's files,
# train.out), eval-test/summary.json (the test set scored) and eval-test/log.jsonl (the finished
# run's log), gradient-flow.json (the run's gradient flow curve); then results.md and results.png.
# TASK/corpus.json pins the generated corpus (its generator's settings): a study never mixes runs on
# two corpora. The default ROOT is in git with a .gitignore that keeps only those small records:
# commit a scored run's and no machine trains it again.
# Run it again after a stop (Ctrl-C, kill, reboot): scored runs are skipped, a stopped one resumes.
# Stop a background study with `kill -- -PID` (the minus: its process group, so that train.py gets
# the signal too and saves where it is; the lock below passes to train.py, so a new run.sh waits for it).
# A run that fails (diverges, say) gets a FAILED file and the study goes on; delete it to retry.
#
# JOBS=N trains N runs at a time (default 1), each on its share of the cores (OMP_NUM_THREADS, unless
# set): on 2 cores JOBS=2 keeps both busy through each run's serial parts too (decoding, say). Each
# run is locked by the worker training it; the others pass it by.
#
# Environment: TASKS ("synth handwriting"), CELLS (all eight), SEEDS ("1 2 3"), UTTERANCES (2000),
# LINES (3000), SYNTH_DATA / HANDWRITING_DATA (a corpus to use as it is, e.g. a real TIMIT or IAM),
# SMALL=1: the small grid (cells peephole nfg gru rnn, seed 1, 40 utterances and 60 lines, 1 epoch,
# hidden size 16). Arguments after ROOT are overrides (section.key=value) for every run, applied
# before the sizes are matched.
set -euo pipefail
cd "$(dirname "$0")/../.."
source recipes/train_or_resume.sh
source recipes/corpora.sh

ROOT=${1:-recipes/variants/study}
[ $# -gt 0 ] && shift
SMALL=${SMALL:-0}
JOBS=${JOBS:-1}
TASKS=${TASKS:-synth handwriting}
OVERRIDES=(train.max_minutes=0)  # the budget is epochs and early stopping: a time limit would favour fast cells
if [ "$SMALL" = 1 ]; then
  CELLS=${CELLS:-peephole nfg gru rnn}
  SEEDS=${SEEDS:-1}
  UTTERANCES=${UTTERANCES:-40}
  LINES=${LINES:-60}
  OVERRIDES+=(train.max_epochs=1 model.hidden_size=16)
fi
CELLS=${CELLS:-peephole vanilla cifg nfg nog noaf gru rnn}
SEEDS=${SEEDS:-1 2 3}
UTTERANCES=${UTTERANCES:-2000}
LINES=${LINES:-3000}
OVERRIDES+=("$@")  # the caller's come last, so they win

declare -A BASE=([synth]=recipes/synth/small.yaml [handwriting]=recipes/handwriting/lines.yaml)

corpus_of() {  # the task's corpus, generated on first use (the synth and handwriting recipes' generators)
  local task=$1 corpus
  case $task in
    synth) corpus=${SYNTH_DATA:-$ROOT/corpora/synth-timit}
           [ -n "${SYNTH_DATA:-}" ] || synth_corpus "$corpus" "$UTTERANCES" >&2 ;;
    handwriting) corpus=${HANDWRITING_DATA:-$ROOT/corpora/synth-iam}
                 [ -n "${HANDWRITING_DATA:-}" ] || handwriting_corpus "$corpus" "$LINES" >&2 ;;
    *) echo "unknown task $task: TASKS takes synth and handwriting" >&2; return 2 ;;
  esac
  echo "$corpus"
}

pin_corpus() {  # a study's records hold for one corpus: refuse to mix in runs on another
  local task=$1 corpus=$2 pinned=$ROOT/$1/corpus.json description
  description=$(cat "$corpus/DOC/GENERATOR.json" "$corpus/synth_handwriting.json" 2>/dev/null) || true
  [ -n "$description" ] || return 0  # a corpus of one's own (a real TIMIT, say): nothing generated to compare
  mkdir -p "$ROOT/$task"
  if [ ! -f "$pinned" ]; then
    printf '%s\n' "$description" > "$pinned"
  elif [ "$(cat "$pinned")" != "$description" ]; then
    echo "$pinned: this study's $task runs were made on another corpus than $corpus (a changed generator or" \
         "settings); run the study in a new folder (recipes/variants/run.sh NEW_ROOT) or delete $ROOT/$task" >&2
    exit 1
  fi
}

study_run() {  # train (or resume) one run, then score it on the test split; 130/143 (a stop) ends the study
  local run=$1 corpus=$2 status=0
  if [ -f "$run/eval-test/summary.json" ]; then echo "$run: done"; return 0; fi
  if [ -f "$run/FAILED" ]; then echo "$run: failed before ($(cat "$run/FAILED")); skipped"; return 0; fi
  echo "$run: training ($(date -u +%H:%M) UTC; output in $run/train.out)"
  train_or_resume "$run" "$run/study.yaml" "$corpus" >> "$run/train.out" 2>&1 || status=$?
  if [ "$status" = 130 ] || [ "$status" = 143 ]; then echo "$run: stopped; run again to resume"; exit "$status"; fi
  if [ "$status" != 0 ]; then
    # train.py's own message (its last line may be a progress bar's)
    echo "train.py exit status $status: $(grep -a -o "error: .*" "$run/train.out" | tail -n 1 || tail -n 1 "$run/train.out")" \
      > "$run/FAILED"
    echo "$run: FAILED ($(cat "$run/FAILED"))"
    return 0
  fi
  grep -o "finished: .*\|this run has finished.*" "$run/train.out" | tail -n 1 || true  # tqdm writes \r, not \n
  mkdir -p "$run/eval-test" && cp "$run/log.jsonl" "$run/eval-test/log.jsonl"  # the finished run's record, for git
  python decode.py --checkpoint "$run" --test-set "$corpus" --split test --out "$run/eval-test" \
    >> "$run/train.out" 2>&1 || echo "$run: decoding reported errors (see $run/train.out)"
  python -c 'import json, sys; s = json.load(open(sys.argv[1])); m = "per" if "per" in s else "cer"
print("test %s %.2f %%" % (m.upper(), 100 * s[m]["rate"]))' "$run/eval-test/summary.json" 2>/dev/null || true  # its score
  python -m recipes.variants.gradient_flow --checkpoint "$run" --data "$corpus" --out "$run/gradient-flow.json" \
    >> "$run/train.out" 2>&1 || echo "$run: the gradient flow failed (see $run/train.out)"
}

mkdir -p "$ROOT"
# One study per folder: a second run.sh would fight the first over the same runs. The children inherit
# the lock on purpose: a train.py left running by a killed run.sh still holds its run folder.
exec 9>> "$ROOT/.lock"
flock -n 9 || { echo "$ROOT: another run.sh is running this study; wait for it or stop it" >&2; exit 1; }
python -c 'import json, sys; print(json.dumps(dict(zip(("small", "tasks", "cells", "seeds"), sys.argv[1:5]),
           overrides=sys.argv[5:])))' "$SMALL" "$TASKS" "$CELLS" "$SEEDS" "${OVERRIDES[@]}" > "$ROOT/grid.json"
declare -A CORPUS
for task in $TASKS; do
  echo "== $task: corpus"
  CORPUS[$task]=$(corpus_of "$task")
  pin_corpus "$task" "${CORPUS[$task]}"
  echo "== $task: sizes (the same number of weights for every cell)"
  # shellcheck disable=SC2086  # CELLS and SEEDS are word lists
  python -m recipes.variants.sizes --config "${BASE[$task]}" --data "${CORPUS[$task]}" --out "$ROOT/$task" \
    --cells $CELLS --seeds $SEEDS -- "${OVERRIDES[@]}"
done
worker() {  # every run in order, skipping those another worker holds; a stop (130/143) ends the worker
  local seed task cell run status
  # Seeds outermost: after the first pass every cell has one result, and the report means something.
  for seed in $SEEDS; do
    for task in $TASKS; do
      for cell in $CELLS; do
        run=$ROOT/$task/$cell/seed$seed
        mkdir -p "$run"
        status=0
        # The run's lock passes to its train.py, as the study's does (see above).
        ( flock -n 8 || { echo "$run: another worker is training it; passed by"; exit 0; }
          study_run "$run" "${CORPUS[$task]}" ) 8>> "$run/.worker.lock" || status=$?
        [ "$status" = 0 ] || return "$status"
      done
    done
  done
}

if [ "$JOBS" -gt 1 ]; then
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))}
  echo "== $JOBS workers, $OMP_NUM_THREADS thread(s) each"
fi
workers=()
for _ in $(seq "$JOBS"); do
  worker & workers+=($!)
  sleep 1  # the first takes the first run before the next looks at it
done
status=0
for pid in "${workers[@]}"; do wait "$pid" || status=$?; done
[ "$status" = 0 ] || exit "$status"
echo "== report"
python -m recipes.variants.report "$ROOT"
