"""Write a model file with the last step's own weights from a training checkpoint, instead of
the running mean a run with --average-from and nothing held out saves, or the best-scoring
round a run with a held-out part saves. The card then gives the last step's count, time and
characters seen.

    python benchmarks/last_step_weights.py FINAL_MODEL CHECKPOINT OUT
"""

import sys

from safetensors.numpy import load_file

from charchat.modelfile import Model, load_model, save_model
from charchat.train.checkpoint import read_checkpoint_meta

final, ckpt, out = sys.argv[1:4]
m = load_model(final)
arrays = load_file(ckpt)
tensors = {k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")}
assert set(tensors) == set(m.tensors), set(tensors) ^ set(m.tensors)
progress = read_checkpoint_meta(ckpt)["progress"]
card = {
    **m.card,
    "averaged_over_steps": 0,
    "steps": progress["step"],
    "chars_trained_on": progress["chars_seen"],
    "train_seconds": round(progress["elapsed"], 1),
}
save_model(Model(m.vocab, m.config, tensors, card), out)
print("wrote", out)
