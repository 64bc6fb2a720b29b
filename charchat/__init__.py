"""charchat: a character-level LSTM you talk to in a terminal."""

import os

# Generation is one small matrix-vector product after another: a second BLAS thread only
# adds hand-off cost, and on a busy machine it makes each product milliseconds slower
# (benchmarks/README.md). Set before numpy loads; a value the user chose is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
