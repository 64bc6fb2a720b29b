"""Training checkpoints: everything an exact resume needs, in one safetensors file.

Model weights, AdamW moments, the running mean of the weights, the carried hidden state,
torch's RNG state and the run's progress. Written atomically; read without pickle.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from charchat.errors import CharchatError
from charchat.files import write_file
from charchat.modelfile import SUFFIX, ModelConfig, read_safetensors_header, to_safetensors_bytes

META_KEY = "charchat_checkpoint"


def checkpoint_path(out: Path) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(SUFFIX) + ".ckpt" + SUFFIX)


def numpy_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().float().numpy().copy() for k, v in module.state_dict().items()}


def save_checkpoint(
    path: Path,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    average: AveragedModel | None,
    hidden: tuple[torch.Tensor, torch.Tensor] | None,
    meta: dict,
    extra: dict | None = None,
) -> None:
    """extra: more named arrays to keep (other processes' random generators)."""
    tensors = {f"model.{k}": v for k, v in numpy_state(module).items()} | (extra or {})
    steps = {}
    for index, state in optimizer.state_dict()["state"].items():
        tensors[f"adam.{index}.exp_avg"] = state["exp_avg"].detach().cpu().numpy()
        tensors[f"adam.{index}.exp_avg_sq"] = state["exp_avg_sq"].detach().cpu().numpy()
        steps[str(index)] = float(state["step"])
    tensors["rng.torch"] = torch.get_rng_state().numpy()
    if average is not None:
        for name, value in numpy_state(average.module).items():
            tensors[f"average.{name}"] = value
    if hidden is not None:
        tensors["hidden.h"] = hidden[0].detach().float().cpu().numpy()
        tensors["hidden.c"] = hidden[1].detach().float().cpu().numpy()
    meta = {
        **meta,
        "adam_steps": steps,
        "averaged_steps": 0 if average is None else int(average.n_averaged),
    }
    write_file(path, to_safetensors_bytes(tensors, {META_KEY: json.dumps(meta)}))


def read_checkpoint_meta(path: Path) -> dict:
    if not Path(path).is_file():
        raise CharchatError(f"nothing to resume: no checkpoint at {path}")
    header, _, _ = read_safetensors_header(Path(path))
    try:
        return json.loads(header["__metadata__"][META_KEY])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CharchatError(f"{path} is not a charchat checkpoint") from None


def check_identity(meta: dict, identity: dict) -> None:
    """Refuse to resume a run whose corpus or settings differ from the checkpoint's."""
    saved = meta["identity"]
    for key, value in identity.items():
        earlier = saved.get(key)
        if key == "model_config" and isinstance(earlier, dict):
            # Settings added since the checkpoint was written had their default value then.
            earlier = asdict(ModelConfig()) | earlier
        if earlier != value:
            names = {"corpus_sha256": "corpus", "parent_sha256": "--from model"}
            what = names.get(key, key.replace("_", " "))
            raise CharchatError(
                f"cannot resume: the checkpoint was made with a different {what} "
                f"(start a new run, or use the original settings)"
            )


def load_checkpoint(
    path: Path,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> tuple[dict, AveragedModel | None, tuple[torch.Tensor, torch.Tensor] | None]:
    """Restore module, optimizer and torch's RNG in place; (meta, running mean, hidden)."""
    from safetensors.numpy import load_file

    meta = read_checkpoint_meta(path)
    arrays = load_file(str(path))

    def part(prefix: str) -> dict[str, torch.Tensor]:
        n = len(prefix)
        return {k[n:]: torch.from_numpy(v).to(device) for k, v in arrays.items() if k[:n] == prefix}

    module.load_state_dict(part("model."))
    opt = optimizer.state_dict()
    for index, step in meta["adam_steps"].items():
        opt["state"][int(index)] = {
            "step": torch.tensor(step),
            "exp_avg": torch.from_numpy(arrays[f"adam.{index}.exp_avg"]).to(device),
            "exp_avg_sq": torch.from_numpy(arrays[f"adam.{index}.exp_avg_sq"]).to(device),
        }
    optimizer.load_state_dict(opt)
    torch.set_rng_state(torch.from_numpy(arrays["rng.torch"]))
    average = None
    if meta.get("averaged_steps"):
        average = AveragedModel(module)
        average.module.load_state_dict(part("average."))
        average.n_averaged.fill_(meta["averaged_steps"])
    hidden = None
    if "hidden.h" in arrays:
        hidden = (part("hidden.")["h"], part("hidden.")["c"])
    return meta, average, hidden


class InMemorySnapshot:
    """A copy of model and optimizer, to roll back to after repeated non-finite steps."""

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer):
        opt = optimizer.state_dict()
        self.model = {k: v.clone() for k, v in module.state_dict().items()}
        self.optimizer = {
            "state": {
                i: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                for i, s in opt["state"].items()
            },
            "param_groups": opt["param_groups"],
        }

    def restore(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        module.load_state_dict(self.model)
        optimizer.load_state_dict(self.optimizer)


class OutputLock:
    """One training run per output file: an exclusive lock beside it, held for the whole run.

    A second run for the same output is refused at once, with the first run's process id.
    The lock dies with its process, so a killed run never leaves a stale lock behind.
    """

    def __init__(self, out: Path):
        out = Path(out)
        self.path = out.with_name(f".{out.name}.lock")
        self.file = None

    def __enter__(self) -> OutputLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, as before
            return self
        try:
            self.file = open(self.path, "a+")  # noqa: SIM115 (held until __exit__)
        except OSError as e:
            raise CharchatError(f"cannot write to {self.path.parent}: {e.strerror}") from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            other = self.file.read().strip() or "unknown"
            self.file.close()
            self.file = None
            raise CharchatError(
                f"another training run (process {other}) is writing "
                f"{self.path.name[1:-5]}; wait for it to finish or choose another --out"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.path.unlink(missing_ok=True)
            self.file.close()


def read_checkpoint_array(path: Path, name: str):
    """One named array of a checkpoint, or None."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return f.get_tensor(name) if name in f.keys() else None  # noqa: SIM118 (no __contains__)
