#!/usr/bin/env bash
# The README tour's examples, regenerated from the bundled default model.
#   bash benchmarks/readme_tour.sh path/to/nietzsche.txt
set -euo pipefail
corpus=${1:?give the path of nietzsche.txt}
run() { echo "\$ $*"; eval "$@"; echo; }
run "printf 'What is noble?\n' | charchat -n 80 --seed 1"
run "printf 'What is noble?\n/probs 6\n' | charchat -n 80 --seed 1"
run "printf 'The philosopher\n/sweep 0.2 0.5 1.0 1.5\n' | charchat -n 100 --seed 1"
run "printf 'The philosopher\n/score the will to power\n/score the will to banana\n' | charchat -n 100 --seed 1"
run "printf '/cells find quote\n/cells find line\n/cells find word\n' | charchat"
run "charchat novelty nietzsche '$corpus' --temp 0.5 --temp 1.0 -n 2000 --seed 1"
