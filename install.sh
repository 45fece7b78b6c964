#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: the speech synthesizers and
# sentence sources the synthetic corpora are made from, handwriting fonts, real test
# recordings, then PyTorch and the project itself (editable, with test extras).
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
  flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng libespeak-ng1 sox
  wordnet-base bible-kjv pocketsphinx-testdata libsndfile1
  g++  # builds the LSTM time loop (asr/_lstm); without it a slower plain-torch loop runs
  # handwriting "writers" for the synthetic IAM-layout corpus
  fonts-dkg-handwriting fonts-breip fonts-femkeklaver fonts-rufscript fonts-ecolier-court
  fonts-kaushanscript fonts-kristi fonts-comic-neue fonts-leckerli-one fonts-lobster fonts-sjfonts
  fonts-havana fonts-tlwg-purisa-otf fonts-dancingscript
)

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
else
  echo "install.sh: no apt-get here; install these Debian packages by hand: ${APT_PACKAGES[*]}" >&2
fi

# torch first, pinned to the build this machine serves from local disk (a range would pull
# several GB of CUDA wheels); the project's own range (pyproject.toml) also admits 2.11 on GPUs.
python3 -m pip install -q 'torch==2.14.1' 'torchaudio==2.11.*'
python3 -m pip install -q -e '.[test,data]'
echo "install.sh: done"
