"""Run by torchrun from test_distributed.py: one process of a tiny training run.

argv: corpus, output model, "stop AT" or "resume" or "run", file for this rank's losses.
"""

import contextlib
import json
import sys
from pathlib import Path

from charchat.events import StepDone
from charchat.modelfile import ModelConfig
from charchat.train.distributed import leave, world_from_environment
from charchat.train.loop import Trainer
from charchat.train.recipe import TrainConfig, TrainingInterrupted
from charchat.train.run import make_trainer
from charchat.train.textfiles import read_corpus

corpus, out, action, losses_path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
world = world_from_environment("cpu")
cfg = TrainConfig(
    seq_len=16,
    batch_size=4,
    lr=1e-2,
    epochs=2,
    eval_every=10,
    warmup_steps=5,
    sample_length=10,
    threads=1,
    precision="fp32",
    restart_share=0.25,
)
losses = []
box = {}


def on_step(event):
    if isinstance(event, StepDone):
        losses.append(event.loss)
        if action.startswith("stop") and event.step == int(action.split()[1]):
            box["trainer"].request_stop()


text = read_corpus([Path(corpus)])
if action == "resume":
    trainer = make_trainer(corpus, out, None, cfg, resume=True, text=text, world=world)
else:
    trainer = Trainer(text, "c.txt", out, ModelConfig(2, 16, 8, 0.1), cfg, world=world)
trainer.on_event = on_step  # every process records its own losses
box["trainer"] = trainer
with contextlib.suppress(TrainingInterrupted):
    trainer.run(resume=action == "resume")
Path(f"{losses_path}.{world.rank}").write_text(json.dumps(losses))
leave(world)
