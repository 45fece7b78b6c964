#!/usr/bin/env bash
# The GPU checks of the Triton LSTM time loop (asr/_lstm/triton_loop.py), in one run of
# about 4 to 5 minutes on an H200: the CUDA tests, then benchmarks/lstm.py and benchmarks/train.py.
#
#     bash benchmarks/gpu_check.sh    # from anywhere; the log goes to $OUT/gpu_check.log, the
#                                     # summary to $OUT/summary.log ($OUT: default /tmp/gpu_out)
#
# Every part runs under `timeout`, so that a hang costs that part only, and within what is
# left of a total budget (GPU_CHECK_BUDGET seconds, default 310; parts are in order of
# importance, and one that would start with under 15 s left is skipped); a failed part is
# reported and the rest still run. Needs torch and triton (and pytest, pyyaml); not
# soundfile, librosa or jiwer: pytest runs with --noconftest (tests/conftest.py imports
# soundfile), and asr.lstm, asr.model and the two benchmarks do not import them.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}
LOGS=$(mktemp -d)  # one log per part, for the summary; $OUT gets two files only
mkdir -p "$OUT"
: >"$OUT/gpu_check.log"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
SUMMARY=()
BUDGET=${GPU_CHECK_BUDGET:-310}

part() {  # part NAME SECONDS COMMAND...: runs COMMAND under a time limit, logs it
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - SECONDS))
    if [ "$left" -lt 15 ]; then
        SUMMARY+=("$(printf '%-16s %-16s' "$name" "SKIPPED (budget)")")
        return
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    echo "=== $name: $* (limit ${limit}s)"
    local start=$SECONDS
    timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$OUT/gpu_check.log" "$LOGS/$name.log"
    local rc=${PIPESTATUS[0]}
    local status="ok"
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && status="TIMED OUT"
    [ "$rc" -ne 0 ] && [ "$status" = ok ] && status="FAILED (rc $rc)"
    SUMMARY+=("$(printf '%-16s %-16s %4ss' "$name" "$status" $((SECONDS - start)))")
}

nvidia-smi 2>&1 | tee -a "$OUT/gpu_check.log"
python3 -c 'import sys, torch, triton; print("python", sys.version.split()[0], "torch", torch.__version__,
"triton", triton.__version__, "cuda", torch.version.cuda,
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "(no GPU)")' 2>&1 \
    | tee -a "$OUT/gpu_check.log"

# the CUDA tests: the loop against the torch loop (float64, float32 at realistic sizes),
# graphs on and off, a whole layer on the GPU against the CPU
part tests 100 python3 -m pytest --noconftest -p no:cacheprovider -x -q -m gpu tests/test_triton_lstm.py
# ours (Triton + graphs; graphs off; torch loop) against nn.LSTM (cuDNN)
part lstm 75 python3 benchmarks/lstm.py --device cuda --configs 3x250 3x512 --batch 1 16 64 --repeats 5
# the same in full float32 on both sides (cuDNN's LSTM, and ours with it, use TF32 by default)
part lstm-ieee 40 python3 benchmarks/lstm.py --device cuda --configs 3x250 3x512 --batch 16 64 --repeats 5 \
    --variants ours --fp32-precision ieee
# whole training steps of ctc-3l-250h (synthetic features), and a TIMIT epoch's minutes
part train-b16 30 python3 benchmarks/train.py --device cuda --batch 16 --steps 5 --repeats 3
part train-b1 30 python3 benchmarks/train.py --device cuda --batch 1 --steps 16 --repeats 3
part lstm-ragged 45 python3 benchmarks/lstm.py --device cuda --configs 3x250 3x512 --batch 1 16 64 \
    --repeats 5 --ragged --variants ours ours-nographs
part train-b16-bf16 25 python3 benchmarks/train.py --device cuda --batch 16 --steps 5 --repeats 3 --precision bf16
# both LSTMs under bf16 autocast (ours: the large products in bf16, the loop in float32)
part lstm-bf16 40 python3 benchmarks/lstm.py --device cuda --configs 3x250 3x512 --batch 16 64 --repeats 5 \
    --variants ours --precision bf16
# the kernels in Triton's interpreter, under this machine's triton version
part interpreter 45 env TRITON_INTERPRET=1 ASR_LSTM_KERNEL=triton \
    python3 -m pytest --noconftest -p no:cacheprovider -x -q tests/triton_interpreted.py

{
    echo
    echo "=== summary ($SECONDS s in all; the whole log: $OUT/gpu_check.log)"
    printf '%s\n' "${SUMMARY[@]}"
    echo "--- tests"
    for name in tests interpreter; do echo "$name: $(tail -n 1 "$LOGS/$name.log" 2>/dev/null)"; done
    echo "--- benchmarks/lstm.py (seconds, medians; ratio = ours / nn.LSTM)"
    grep -hE '^(config|3x)' "$LOGS/lstm.log" 2>/dev/null
    for name in lstm-ieee lstm-ragged lstm-bf16; do
        echo "${name#lstm-}:"
        grep -hE '^3x' "$LOGS/$name.log" 2>/dev/null
    done
    echo "--- benchmarks/train.py"
    for name in train-b16 train-b1 train-b16-bf16; do
        echo "$name:"
        grep -hE 'frames/s|ratio' "$LOGS/$name.log" 2>/dev/null
    done
} | tee "$OUT/summary.log"
