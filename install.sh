#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: the speech synthesizers and
# sentence sources the synthetic corpora are made from, handwriting fonts, real test
# recordings, then PyTorch and the project itself (editable, with the test extra CI needs).
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
  flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng libespeak-ng1 espeak-ng-data sox
  wordnet-base bible-kjv dict-gcide dict-devil libsndfile1
  # real human recordings, for evaluation only (benchmarks/real_speech.py, tests/test_real_speech.py)
  pocketsphinx-testdata alsa-utils asterisk-core-sounds-en-wav asterisk-core-sounds-en
  g++  # builds the LSTM time loop (asr/_lstm); without it a slower plain-torch loop runs
  chromium  # tests/test_serve.py drives the service's page in a headless browser
  # handwriting "writers" for the synthetic IAM-layout corpus
  fonts-dkg-handwriting fonts-breip fonts-femkeklaver fonts-rufscript fonts-ecolier-court
  fonts-kaushanscript fonts-kristi fonts-comic-neue fonts-leckerli-one fonts-lobster fonts-sjfonts
  fonts-havana fonts-tlwg-purisa-otf fonts-dancingscript fonts-klee fonts-urw-base35 fonts-seto
  fonts-yusei-magic fonts-yozvox-yozfont-standard-kana fonts-aoyagi-soseki
  hershey-fonts-data  # single-stroke glyphs for the stroke writers (data/handwriting/strokes.py)
)

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
else
  echo "install.sh: no apt-get here; install these Debian packages by hand: ${APT_PACKAGES[*]}" >&2
fi

# torch first, as the matched torch + torchaudio pair pinned in constraints.txt (a range would
# pull several GB of CUDA wheels); every pip call gets the same constraints, so installing the
# project cannot move one of the pair. pyproject.toml's own range also admits the GPU pair.
python3 -m pip install -q -c constraints.txt torch torchaudio
# bench: pocketsphinx and flashlight, the peers the tests compare with; augment: simulated rooms;
# serve: the HTTP service (asr/serve.py)
python3 -m pip install -q -c constraints.txt -e '.[test,bench,augment,serve]'
echo "install.sh: done"
