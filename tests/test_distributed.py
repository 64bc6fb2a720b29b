"""Training with several processes under torchrun (gloo on CPU)."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEXT

from charchat.modelfile import load_model
from charchat.train.model import CharLSTM

WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(*args, processes=2, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    command += ["--standalone", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_processes_train_one_model_with_the_same_weights(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 4)
    out = tmp_path / "m.safetensors"
    args = ["-m", "charchat", "train", corpus, "--out", out, "--hidden", "16", "--embedding", "8"]
    args += ["--epochs", "1", "--batch-size", "4", "--seq-len", "16", "--precision", "fp32"]
    done = torchrun(*args)
    assert done.stderr.count("saved ") == 1 and "2 processes" in done.stderr  # one speaks
    model = load_model(out)
    assert model.card["world_size"] == 2 and model.card["train_config"]["threads"] == 1
    digest = hashlib.sha256()
    for value in CharLSTM.from_file(model).state_dict().values():
        digest.update(value.float().numpy().tobytes())
    assert model.card["weights_sha256_on_every_process"] == digest.hexdigest()
    assert model.card["chars_trained_on"] == model.card["steps"] * 2 * 4 * 16


def test_resume_with_as_many_processes_continues_exactly(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 4)
    torchrun(WORKER, corpus, tmp_path / "a.safetensors", "run", tmp_path / "straight")
    torchrun(WORKER, corpus, tmp_path / "b.safetensors", "stop 7", tmp_path / "first")
    torchrun(WORKER, corpus, tmp_path / "b.safetensors", "resume", tmp_path / "rest")
    for rank in (0, 1):
        straight = json.loads(Path(f"{tmp_path / 'straight'}.{rank}").read_text())
        first = json.loads(Path(f"{tmp_path / 'first'}.{rank}").read_text())
        rest = json.loads(Path(f"{tmp_path / 'rest'}.{rank}").read_text())
        assert len(first) == 7 and len(straight) > 14
        assert first + rest == straight  # exact float equality, each process its own losses
    ranks = [json.loads(Path(f"{tmp_path / 'straight'}.{r}").read_text()) for r in (0, 1)]
    assert ranks[0] != ranks[1]  # each process read its own streams


def test_resume_with_another_number_of_processes_continues(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 4)
    torchrun(WORKER, corpus, tmp_path / "b.safetensors", "stop 7", tmp_path / "first")
    done = subprocess.run(
        [sys.executable, WORKER, corpus, tmp_path / "b.safetensors", "resume", tmp_path / "rest"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    rest = json.loads(Path(f"{tmp_path / 'rest'}.0").read_text())
    model = load_model(tmp_path / "b.safetensors")
    assert rest and model.card["world_size"] == 1 and model.card["steps"] == 7 + len(rest)


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo on POSIX")
