#!/usr/bin/env bash
# Train the English character models on a lent GPU machine for a fixed time, from a corpus
# carried there packed (recipes/english/pack_corpus.py), and leave the results in $OUT.
#
# Run from the repository root there, with the corpus at .gpu/english-v2 and the wheels the
# machine lacks (soundfile, cffi, pycparser, jiwer, rapidfuzz) in .whl/:
#     MINUTES=4.5 bash recipes/english/gpu_train.sh
# Two runs share the GPU and the machine's cores: the bidirectional model (the default for
# audio) and a unidirectional one (for streaming). Both use torch's fused LSTM (cuDNN,
# model.cell=vanilla): no Python time loop (how it compares with the peephole Triton loop waits
# for issue 11's GPU measurements); Greff et al. (2017) and recipes/variants found peepholes of
# little consequence. $OUT gets each run's folder as a tarball (checkpoint split below the
# 16 MB a returned file may have; `cat run.tar.part* | tar x` joins it). The run folders stay
# apart from the corpus (a first try wrote both into one folder and tarred the corpus back).
# Reading the corpus (features, waveforms into memory) takes about 2 minutes on 16 cores
# before MINUTES of training start.
set -uo pipefail
MINUTES=${MINUTES:-4.5}
OUT=${OUT:-/tmp/out}
CORPUS=${CORPUS:-.gpu/english-v2}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
nproc; nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
time python3 recipes/english/pack_corpus.py unpack "$CORPUS" /tmp/corpus --jobs 16 || exit 1

train() {  # name, workers, overrides...
  local name=$1 workers=$2; shift 2
  timeout $(python3 -c "print(int(${MINUTES} * 60 + 180))") \
    python3 train.py --config recipes/english/chars.yaml --data /tmp/corpus --out /tmp/runs/$name \
      model.cell=vanilla model.peepholes=false train.device=cuda train.batch_size=32 \
      train.max_minutes="$MINUTES" data.num_workers="$workers" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $?"
}
train english 10 &
train english-uni 4 model.bidirectional=false model.hidden_size=384 &
wait
for name in english english-uni; do
  tail -c 3000 "$OUT/$name.log" | tr '\r' '\n' | grep -v '%|' | tail -25
  rm -f /tmp/runs/$name/last.pt /tmp/runs/$name/.lock  # best.pt ships; last.pt holds the optimizer too
  tar -C /tmp/runs -cf - "$name" | split -b 15M - "$OUT/$name.tar.part"
done
ls -la "$OUT"
