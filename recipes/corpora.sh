# Sourced by the recipes' run.sh: the synthesized corpora, generated once (a finished corpus is kept).
#   synth_corpus DIR UTTERANCES        # TIMIT layout, the shipped model's regime (recipes/synth)
#   handwriting_corpus DIR LINES       # IAM layout, fonts as writers (recipes/handwriting)
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
  local corpus=$1 lines=$2
  if [ -f "$corpus/ascii/lines.txt" ]; then
    echo "already there"
  else
    python -m data.synth_handwriting --out "$corpus" --lines "$lines"
  fi
}
