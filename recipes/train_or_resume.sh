# Sourced by the recipes' run.sh: train a run from a config, or resume it where it stopped.
#   train_or_resume RUN CONFIG CORPUS [train.py overrides ...]
train_or_resume() {
  local run=$1 config=$2 corpus=$3
  shift 3
  if [ -f "$run/last.pt" ]; then
    python train.py --out "$run" --resume "$@"
  else
    python train.py --config "$config" --data "$corpus" --out "$run" "$@"
  fi
}
