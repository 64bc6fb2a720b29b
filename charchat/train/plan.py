"""The budget planner: from a time budget, the corpus size and the measured speed of this
machine, the model size and training recipe that should score best in that time.

A pure function, so it can be tested and reasoned about; the measurements come from
probe.py. The rule comes from the race recorded in benchmarks/README.md ("Planning a
budget"): while the text is read only a few times, speed wins and a one-layer model without
dropout learns most per second; past that, it starts to learn the text by heart, and a
deeper, dropout-regularised model makes better use of the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from charchat.modelfile import ModelConfig

BATCH_SIZE = 32  # twice the updates per character of 64, which a short budget needs more
SEQ_LEN = 64
VAL_CHARS = 25_000  # a bounded validation sample: enough for ±0.01 bits, cheap to score
VAL_FRACTION_MOST = 0.1
VAL_PIECES = 16  # the sample is spread over the text, so the model still reads its end
OVERHEAD = 0.06  # share of the budget spent on validation, samples, checkpoints and saving
DEEP_FROM_PASSES = 10.0  # passes of the one-layer model past which the deeper one wins

SHALLOW = ModelConfig(layers=1, hidden=512, embedding=64, dropout=0.0)
DEEP = ModelConfig(layers=2, hidden=512, embedding=64, dropout=0.0)
CANDIDATES = {"1x512": SHALLOW, "2x512": DEEP}


@dataclass(frozen=True)
class Plan:
    model: ModelConfig
    train: dict = field(default_factory=dict)  # TrainConfig fields the plan sets
    chars_per_second: float = 0.0  # measured for the chosen model, precision and threads
    passes: float = 0.0  # expected passes over the training text
    precision: str = "fp32"
    threads: int | None = None
    what: str = ""  # how the line begins ("fine-tune the", or a fresh model)

    def line(self, model: ModelConfig | None = None, train: dict | None = None) -> str:
        """The plan as one line; with the model and settings finally used, if flags changed
        them."""
        m, t = model or self.model, {**self.train, **(train or {})}
        where = "spread over the text" if t.get("val_pieces", 1) > 1 else "the end"
        dropped = f"dropout {m.dropout:g}" + (
            f", weight-drop {m.weight_drop:g}" if m.weight_drop else ""
        )
        return (
            f"plan: {self.what}{m.layers}x{m.hidden} LSTM (embedding {m.embedding}, {dropped}), "
            f"batch {t['batch_size']}x{t['seq_len']}, lr {t['lr']:g}, "
            f"{self.precision}, {self.threads or 'default'} threads, "
            f"{self.chars_per_second:,.0f} chars/s measured, "
            f"about {self.passes:.1f} passes over the text, "
            f"validation on {t['val_fraction'] * 100:.1f} % ({where})"
        )

    def card(self) -> dict:
        return {
            "chars_per_second": round(self.chars_per_second),
            "passes": round(self.passes, 2),
            "precision": self.precision,
            "threads": self.threads,
        }


def plan_for(
    seconds: float,
    corpus_chars: int,
    speeds: dict[str, float],
    precision: str = "fp32",
    threads: int | None = None,
) -> Plan:
    """The plan for `seconds` of training on a text of `corpus_chars` characters, given how
    fast each candidate model trains here (chars/s, by CANDIDATES name, at the precision and
    thread count measured best)."""
    val_fraction = min(VAL_FRACTION_MOST, VAL_CHARS / max(1, corpus_chars))
    train_chars = max(1.0, corpus_chars * (1 - val_fraction))
    passes = {
        name: speed * seconds * (1 - OVERHEAD) / train_chars for name, speed in speeds.items()
    }
    if passes["1x512"] <= DEEP_FROM_PASSES or "2x512" not in speeds:
        name = "1x512"
        # Speed first: no dropout while the text is read only a few times.
        dropout = 0.0 if passes[name] <= 4 else min(0.2, 0.02 * (passes[name] - 4))
        lr = 4e-3
    else:
        name = "2x512"
        dropout = min(0.35, 0.05 + 0.025 * passes[name])
        lr = 3e-3
    model = ModelConfig(**{**CANDIDATES[name].__dict__, "dropout": round(dropout, 3)})
    steps = speeds[name] * seconds * (1 - OVERHEAD) / (BATCH_SIZE * SEQ_LEN)
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
    return Plan(model, train, speeds[name], passes[name], precision, threads)


# Fine-tuning (the race in benchmarks/README.md, "Your own text"): the parent already knows the
# language, so a gentler rate; a small text is read many times in a short budget, so the
# validation sample is scored often and the run stops once it no longer improves.
FINE_TUNE_LR = 1e-3
FINE_TUNE_ROUNDS = 16  # validations over the budget
FINE_TUNE_PATIENCE = 3  # rounds without a better score before it stops
# Regularisation grows with the passes, up to the parent's own: on 0.9 MB of Shakespeare read
# 0.8 times, nietzsche's dropout 0.4 / weight-drop 0.3 scored 1.515 nats/char, 0.05 / 0.04
# scored 1.450 (from scratch: 1.459); on 100 kB read 14 times, the parent's won.
DROPOUT_PER_PASS = 0.05
WEIGHT_DROP_PER_PASS = 0.04
# without --minutes: TrainConfig's defaults, but these
FINE_TUNE_DEFAULTS = {"lr": FINE_TUNE_LR, "warmup_steps": 30, "patience": FINE_TUNE_PATIENCE}


def plan_fine_tuning(
    seconds: float,
    corpus_chars: int,
    speed: float,
    parent: ModelConfig,
    precision: str = "fp32",
    threads: int | None = None,
) -> Plan:
    """The plan for fine-tuning a model of architecture `parent` (which training at `speed`
    chars/s here) for `seconds` on a text of `corpus_chars` characters."""
    val_fraction = min(VAL_FRACTION_MOST, VAL_CHARS / max(1, corpus_chars))
    train_chars = max(1.0, corpus_chars * (1 - val_fraction))
    passes = speed * seconds * (1 - OVERHEAD) / train_chars
    steps = speed * seconds * (1 - OVERHEAD) / (BATCH_SIZE * SEQ_LEN)
    train = {
        "batch_size": BATCH_SIZE,
        "seq_len": SEQ_LEN,
        "lr": FINE_TUNE_LR,
        "weight_decay": 0.01,
        "warmup_steps": 30,
        "min_lr_ratio": 0.1,
        "val_fraction": round(val_fraction, 6),
        "val_pieces": VAL_PIECES if val_fraction < VAL_FRACTION_MOST else 1,
        "eval_every": max(20, int(steps / FINE_TUNE_ROUNDS)),
        "patience": FINE_TUNE_PATIENCE,
    }
    model = replace(
        parent,
        dropout=round(min(parent.dropout, DROPOUT_PER_PASS * passes), 3),
        weight_drop=round(min(parent.weight_drop, WEIGHT_DROP_PER_PASS * passes), 3),
    )
    return Plan(model, train, speed, passes, precision, threads, "fine-tune the ")
