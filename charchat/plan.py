"""The budget planner: from a time budget, the corpus size and the measured speed of this
machine, the model size and training recipe that should score best in that time.

A pure function, so it can be tested and reasoned about; the measurements come from
probe.py. The rule comes from experiments recorded in benchmarks/README.md ("Planning a
budget"): below a few passes over the text, speed wins and regularisation only slows
learning; past that, a one-layer model starts to learn the text by heart, and a deeper,
dropout-regularised model makes better use of the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from charchat.modelfile import ModelConfig

BATCH_SIZE = 32  # twice the updates per character of 64, which the budget needs more
SEQ_LEN = 64
VAL_CHARS = 25_000  # a bounded validation sample: enough for ±0.01 bits, cheap to score
VAL_FRACTION_MOST = 0.1
VAL_PIECES = 16  # the sample is spread over the text, so the model still reads its end
# How much slower per character a 2x512 model trains than the 1x512 reference (measured
# ratio 2.4-2.6 across fp32/bf16 and 1-2 threads on the race machine).
DEEP_COST = 2.5
DEEP_FROM_PASSES = 12.0  # reference passes past which the deeper model wins
OVERHEAD = 0.06  # share of the budget spent on validation, samples, checkpoints and saving


@dataclass(frozen=True)
class Plan:
    model: ModelConfig
    train: dict = field(default_factory=dict)  # TrainConfig fields the plan sets
    chars_per_second: float = 0.0  # measured for the chosen model, precision and threads
    passes: float = 0.0  # expected passes over the training text
    precision: str = "fp32"
    threads: int | None = None

    def line(self) -> str:
        m = self.model
        return (
            f"plan: {m.layers}x{m.hidden} LSTM (embedding {m.embedding}, dropout {m.dropout:g}), "
            f"batch {self.train['batch_size']}x{self.train['seq_len']}, lr {self.train['lr']:g}, "
            f"{self.precision}, {self.threads or 'default'} threads, "
            f"{self.chars_per_second:,.0f} chars/s measured, "
            f"about {self.passes:.1f} passes over the text, "
            f"validation on {self.train['val_fraction'] * 100:.1f} % "
            + ("(spread over the text)" if self.train["val_pieces"] > 1 else "(the end)")
        )

    def card(self) -> dict:
        return {
            "line": self.line(),
            "chars_per_second": round(self.chars_per_second),
            "passes": round(self.passes, 2),
            "precision": self.precision,
            "threads": self.threads,
        }


def plan_for(
    seconds: float,
    corpus_chars: int,
    reference_chars_per_second: float,
    precision: str = "fp32",
    threads: int | None = None,
) -> Plan:
    """The plan for `seconds` of training on a text of `corpus_chars` characters, given how
    fast a 1x512 model trains here (chars/s, at the precision and threads measured best)."""
    val_fraction = min(VAL_FRACTION_MOST, VAL_CHARS / max(1, corpus_chars))
    train_chars = max(1.0, corpus_chars * (1 - val_fraction))
    budget_chars = reference_chars_per_second * seconds * (1 - OVERHEAD)
    passes = budget_chars / train_chars
    if passes <= DEEP_FROM_PASSES:
        # Speed first: one layer, no dropout while the text is read only a few times.
        dropout = 0.0 if passes <= 4 else min(0.2, 0.025 * (passes - 4))
        model = ModelConfig(layers=1, hidden=512, embedding=64, dropout=round(dropout, 3))
        lr, speed = 4e-3, reference_chars_per_second
    else:
        speed = reference_chars_per_second / DEEP_COST
        passes = passes / DEEP_COST
        dropout = min(0.35, 0.1 + 0.02 * passes)
        model = ModelConfig(layers=2, hidden=512, embedding=64, dropout=round(dropout, 3))
        lr = 3e-3
    steps = budget_chars / (BATCH_SIZE * SEQ_LEN) / (1 if model.layers == 1 else DEEP_COST)
    train = {
        "batch_size": BATCH_SIZE,
        "seq_len": SEQ_LEN,
        "lr": lr,
        "weight_decay": 0.01 if model.dropout == 0 else 0.05,
        "warmup_steps": 30,
        "min_lr_ratio": 0.1,
        "val_fraction": round(val_fraction, 6),
        "val_pieces": VAL_PIECES if val_fraction < VAL_FRACTION_MOST else 1,
        "eval_every": max(50, int(steps / 8)),
    }
    return Plan(model, train, speed, passes, precision, threads)
