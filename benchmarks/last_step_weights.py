"""Write a model file with the last step's own weights from a training checkpoint, instead of
the running mean a run with --average-from and nothing held out saves.

    python benchmarks/last_step_weights.py FINAL_MODEL CHECKPOINT OUT
"""

import sys

from safetensors.numpy import load_file

from charchat.modelfile import Model, load_model, save_model

final, ckpt, out = sys.argv[1:4]
m = load_model(final)
arrays = load_file(ckpt)
tensors = {k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")}
assert set(tensors) == set(m.tensors), set(tensors) ^ set(m.tensors)
card = {**m.card, "averaged_over_steps": 0}
save_model(Model(m.vocab, m.config, tensors, card), out)
print("wrote", out)
