# Sourced by the recipes' run.sh: the synthesized corpora, generated once (a finished corpus is kept).
#   synth_corpus DIR UTTERANCES        # TIMIT layout, the shipped model's regime (recipes/synth)
#   handwriting_corpus DIR LINES [STROKE_WRITERS]  # IAM layout, fonts and stroke writers (default 24)
synth_corpus() {
  local corpus=$1 utterances=$2
  if [ -f "$corpus/DOC/GENERATOR.json" ]; then
    echo "already there"
  else
    python -m data.synth_timit --out "$corpus" --utterances "$utterances" \
      --voices flite,festival --test-voices "" --dev-voices "" --text wordnet,bible  # the shipped model's regime
  fi
}

handwriting_corpus() {
  local corpus=$1 lines=$2 stroke_writers=${3:-24}
  if [ -f "$corpus/ascii/lines.txt" ]; then
    echo "already there"
  else
    python -m data.synth_handwriting --out "$corpus" --lines "$lines" --stroke-writers "$stroke_writers"
  fi
}
