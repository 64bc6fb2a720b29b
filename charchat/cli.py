"""The command line: a thin translator from core calls and errors to output and exit codes.

torch is imported only inside `train` and `eval`, so `--help`, `--version`, `models` and the
chat start fast.
"""

from __future__ import annotations

import math
import sys
from enum import Enum
from pathlib import Path

import typer

from charchat import __version__
from charchat import settings as spec
from charchat.errors import CharchatError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Talk to a character-level LSTM: type a few characters, watch it continue them.\n\n"
    "Bare `charchat` starts a chat on the default model (piped stdin: each line is a prompt "
    "or a /command).",
)


Mode = Enum("Mode", {name.replace("-", "_"): name for name in spec.MODES}, type=str)


class Preset(str, Enum):
    small = "small"
    medium = "medium"
    large = "large"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


def fail(message: str, code: int = 1) -> None:
    """One clear line on stderr and an exit code."""
    write_error(message)
    raise typer.Exit(code)


def write_error(message: str) -> None:
    from charchat.style import safe_text

    sys.stderr.write(f"charchat: error: {safe_text(message, keep_newlines=False)}\n")
    sys.stderr.flush()


def version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"charchat {__version__}\n")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def chat(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", "-m", help="Model name or path."),
    temp: float = typer.Option(
        spec.TEMPERATURE.default,
        "--temp",
        "-t",
        help=f"Softmax temperature, {spec.TEMPERATURE.describe()}.",
    ),
    mode: Mode = typer.Option(
        spec.MODE.default, "--mode", help="How the next character is chosen."
    ),
    top_k: int = typer.Option(
        spec.TOP_K.default,
        "--top-k",
        help=f"Characters kept in top-k mode, {spec.TOP_K.describe()}.",
    ),
    top_p: float = typer.Option(
        spec.TOP_P.default,
        "--top-p",
        help=f"Probability mass kept in top-p mode, {spec.TOP_P.describe()}.",
    ),
    min_p: float = typer.Option(
        spec.MIN_P.default,
        "--min-p",
        help=f"In min-p mode, keep characters at least this share of the likeliest's "
        f"probability, {spec.MIN_P.describe()}.",
    ),
    beam: int = typer.Option(
        spec.BEAM_WIDTH.default,
        "--beam",
        help=f"In beam mode, continuations followed at once, {spec.BEAM_WIDTH.describe()}.",
    ),
    stop: list[str] = typer.Option(
        [],
        "--stop",
        help=r"End each turn right after this text (\n newline, \t tab, \s space); repeatable.",
    ),
    norepeat: int = typer.Option(
        spec.NO_REPEAT.default,
        "--norepeat",
        help=f"Never write an N-character sequence the text already has, "
        f"{spec.NO_REPEAT.describe()}.",
    ),
    speed: float | None = typer.Option(
        None,
        "--speed",
        help=f"Characters shown a second, {spec.SPEED.describe()} "
        f"[default: {spec.SPEED.default:g} on a terminal, unpaced when piped].",
    ),
    session: str | None = typer.Option(
        None, "--session", help="Continue a session saved with /session save FILE."
    ),
    length: int = typer.Option(
        spec.LENGTH.default,
        "--length",
        "-n",
        help=f"Characters generated per prompt, {spec.LENGTH.describe()}.",
    ),
    seed: int | None = typer.Option(
        spec.SEED.default, "--seed", help="Random seed of the sampler: same seed, same text."
    ),
    whole: bool = typer.Option(False, "--whole", help="Piped: all of stdin is one prompt."),
    echo: bool = typer.Option(False, "--echo", help="Piped: write each prompt before its text."),
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """Chat with a model (the default when no command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from charchat.terminal.launch import ChatOptions, run_chat

    options = ChatOptions(
        model=model,
        temperature=temp,
        mode=mode.value,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        beam_width=beam,
        stops=tuple(stop),
        norepeat=norepeat,
        session_file=session,
        speed=speed,
        length=length,
        seed=seed,
        whole=whole,
        echo=echo,
    )
    try:
        code = run_chat(options)
    except CharchatError as e:
        fail(str(e), e.exit_code)
    raise typer.Exit(code)


@app.command()
def train(
    corpus: list[Path] = typer.Argument(
        ..., help="UTF-8 text files to learn from; a folder stands for the files in it."
    ),
    name: str | None = typer.Option(None, "--name", help="Save as NAME in the user models dir."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Save to this path."),
    preset: Preset = typer.Option(
        Preset.medium, "--preset", help="Model size (with --minutes alone: planned)."
    ),
    layers: int | None = typer.Option(None, "--layers", help="LSTM layers (overrides preset)."),
    hidden: int | None = typer.Option(None, "--hidden", help="Units per layer."),
    embedding: int | None = typer.Option(None, "--embedding", help="Embedding size."),
    dropout: float | None = typer.Option(None, "--dropout", help="Dropout probability."),
    weight_drop: float | None = typer.Option(
        None, "--weight-drop", help="DropConnect probability on the recurrent weights."
    ),
    input_dropout: float | None = typer.Option(
        None, "--input-dropout", help="Dropout probability on the embedded characters."
    ),
    locked_dropout: bool | None = typer.Option(
        None,
        "--locked-dropout/--step-dropout",
        help="One dropout mask per window for all its steps (variational), or a fresh one "
        "at every step [default: step].",
    ),
    seq_len: int | None = typer.Option(
        None, "--seq-len", help="Characters per BPTT window [default: planned, or 128]."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Parallel streams per batch [default: planned, or 64]."
    ),
    lr: float | None = typer.Option(
        None, "--lr", help="Peak learning rate [default: planned, or 0.002]."
    ),
    weight_decay: float | None = typer.Option(
        None, "--weight-decay", help="AdamW weight decay [default: planned, or 0.05]."
    ),
    epochs: float | None = typer.Option(
        None,
        "--epochs",
        help="Passes over the training text [default: 20, or what fits --minutes].",
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Optimizer steps in the schedule, instead of --epochs."
    ),
    warmup_steps: int | None = typer.Option(
        None, "--warmup-steps", help="Steps of linear warm-up [default: planned, or 100]."
    ),
    min_lr_ratio: float | None = typer.Option(
        None,
        "--min-lr-ratio",
        help="The cosine ends at this fraction of --lr [default: planned, or 0.05].",
    ),
    minutes: float | None = typer.Option(
        None,
        "--minutes",
        help="Wall-clock budget, from launch to saved model. Without size flags, the model "
        "and recipe are planned for it.",
    ),
    average_from: float | None = typer.Option(
        None,
        "--average-from",
        help="From this fraction of the schedule on, also score the running mean of the weights.",
    ),
    restart_share: float | None = typer.Option(
        None,
        "--restart-share",
        help="Share of streams restarted from the learned starting state at each window "
        "[default: 1/32].",
    ),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    val_fraction: float | None = typer.Option(
        None, "--val-fraction", help="Held out from the end [default: planned, or 0.1]."
    ),
    precision: Precision = typer.Option(
        Precision.auto,
        "--precision",
        help="Forward pass in fp32, bf16 or fp16 (fp16 with loss scaling; fp32 weights either way); "
        "auto: what measures faster here.",
    ),
    seed: int = typer.Option(1234, "--seed", help="Random seed."),
    device: Device = typer.Option(Device.auto, "--device", help="Where to train."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run checkpointed for OUT."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing model file."),
) -> None:
    """Train a model on text files."""
    from charchat.terminal.trainview import TrainingView
    from charchat.train.run import run_training

    try:
        code = run_training(
            corpus=corpus,
            name=name,
            out=out,
            preset=preset.value,
            arch_overrides={
                "layers": layers,
                "hidden": hidden,
                "embedding": embedding,
                "dropout": dropout,
                "weight_drop": weight_drop,
                "input_dropout": input_dropout,
                "locked_dropout": locked_dropout,
            },
            train_options={
                "seq_len": seq_len,
                "batch_size": batch_size,
                "lr": lr,
                "weight_decay": weight_decay,
                "epochs": epochs,
                "steps": steps,
                "warmup_steps": warmup_steps,
                "min_lr_ratio": min_lr_ratio,
                "minutes": minutes,
                "average_from": average_from,
                "restart_share": restart_share,
                "threads": threads,
                "val_fraction": val_fraction,
                "seed": seed,
                "device": device.value,
                "precision": precision.value,
            },
            resume=resume,
            force=force,
            argv=sys.argv[1:],
            view_for=TrainingView,
        )
    except CharchatError as e:
        code = 1
        write_error(str(e))
    from charchat.train.distributed import part_now

    part_now(code)  # one of several torchrun processes: ends here
    raise typer.Exit(code)


@app.command("eval")
def evaluate(
    model: str = typer.Argument(..., help="Model name or path."),
    text: Path = typer.Argument(..., help="A UTF-8 text file to score."),
    tail: float | None = typer.Option(
        None, "--tail", help="Score only the last fraction of the text (0.1 = a held-out 10 %)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
) -> None:
    """Bits per character of a model on a text: whole text, in order, state carried."""
    try:
        from charchat.terminal.trainview import ScoringProgress
        from charchat.train.evaluate import evaluate_file

        with ScoringProgress(enabled=sys.stderr.isatty()) as progress:
            result = evaluate_file(model, text, tail, threads, progress.start, progress.update)
    except CharchatError as e:
        fail(str(e))
    sys.stdout.write(
        f"bits/char   {result.bits_per_char:.4f}\n"
        f"nats/char   {result.nats_per_char:.4f}\n"
        f"scored      {result.scored:,} characters of {result.characters:,}\n"
        f"skipped     {result.skipped:,} outside the vocabulary\n"
    )


@app.command()
def calibrate(
    model: str = typer.Argument(..., help="Model name or path."),
    text: Path | None = typer.Argument(
        None, help="Held-out UTF-8 text (not learnt by the model) to fit the temperature on."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the calibrated model."),
    tail: float | None = typer.Option(
        None, "--tail", help="Fit on the last fraction of TEXT only (0.1 = a held-out 10 %)."
    ),
    temperature: float | None = typer.Option(
        None,
        "--temperature",
        help="Apply this temperature instead of fitting one (e.g. one fitted on a tuning run).",
    ),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Divide a model's logits by the temperature that fits held-out text best, and save it."""
    try:
        if out.exists() and not force:
            raise CharchatError(f"{out} exists (use --force to overwrite it)")
        from charchat.terminal.trainview import ScoringProgress
        from charchat.train.calibrate import calibrate as run_calibration

        with ScoringProgress(enabled=sys.stderr.isatty() and text is not None) as progress:
            calibrated, fit = run_calibration(
                model, out, text, tail, temperature, threads, progress.start, progress.update
            )
    except CharchatError as e:
        fail(str(e))
    total = calibrated.card["calibration"]["temperature"]
    if fit is None:
        sys.stdout.write(f"temperature {temperature:g} (in all: {total:g})\n")
    else:
        sys.stdout.write(
            f"temperature {fit.temperature:g} (in all: {total:g})\n"
            f"bits/char   {fit.bits_before:.4f} -> {fit.bits_after:.4f}\n"
            f"nats/char   {fit.nats_before:.4f} -> {fit.nats_after:.4f}\n"
            f"scored      {fit.scored:,} characters\n"
        )
    sys.stderr.write(f"saved {out}\n")


@app.command("novelty")
def novelty(
    model: str = typer.Argument(..., help="Model name or path."),
    corpus: Path = typer.Argument(..., help="The text it learnt from (UTF-8)."),
    temps: list[float] = typer.Option(
        [0.5, 1.0], "--temp", help="Temperatures to sample at (repeatable)."
    ),
    length: int = typer.Option(2000, "--length", "-n", help="Characters sampled at each."),
    min_chars: int = typer.Option(
        spec.NOVELTY_MIN.default,
        "--min",
        help=f"A copy is a verbatim stretch of at least this many characters, "
        f"{spec.NOVELTY_MIN.describe()}.",
    ),
    prompt: str = typer.Option("", "--prompt", help="Text read before sampling."),
    seed: int = typer.Option(1, "--seed", help="Random seed."),
) -> None:
    """How much of what a model writes occurs verbatim in the text it learnt from."""
    try:
        from charchat.terminal.reports import report

        lines = report(model, corpus, temps, length, min_chars, prompt, seed)
    except CharchatError as e:
        fail(str(e))
    sys.stdout.write("".join(line + "\n" for line in lines))


@app.command()
def models() -> None:
    """List the bundled and user models."""
    from charchat.modelfile import available_models, load_model
    from charchat.paths import user_models_dir
    from charchat.style import safe_text

    rows = []
    for name, where, path in available_models():
        try:
            m = load_model(path)
        except CharchatError as e:
            rows.append((name, where, "-", "-", f"unreadable: {e}", "-", path.stat().st_size))
            continue
        card = m.card
        bpc = card.get("best_val_bits_per_char")
        if bpc is None:  # learnt all its text: its recipe's tuning run was scored instead
            bpc = card.get("tuning_run", {}).get("held_out_bits_per_char")
        rows.append(
            (
                name,
                where,
                f"{m.parameters / 1e6:.2f}M ({m.config.layers}x{m.config.hidden})",
                str(len(m.vocab)),
                str(card.get("corpus", "?")),
                f"{bpc:.3f}" if isinstance(bpc, (int, float)) and math.isfinite(bpc) else "-",
                path.stat().st_size,
            )
        )
    if not rows:
        sys.stderr.write(f"charchat: no models found (user models go in {user_models_dir()})\n")
        return
    from rich.table import Table

    from charchat.terminal.render import stdout_console

    table = Table(box=None, pad_edge=False)
    for column in ("name", "where", "parameters", "vocab", "trained on", "val bits/char", "size"):
        table.add_column(
            column, justify="right" if column in ("vocab", "val bits/char", "size") else "left"
        )
    for row in rows:
        table.add_row(*(safe_text(str(v), False) for v in row[:-1]), f"{row[-1] / 1e6:.1f} MB")
    stdout_console().print(table)


def main() -> None:
    """Run the app; output that cannot be written ends it with one line, never a traceback."""
    from charchat.terminal.pipe import silence_broken_pipe

    try:
        try:
            app()
        finally:
            sys.stdout.flush()  # what is still buffered fails here, not at exit
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        silence_broken_pipe()
        sys.exit(0)
    except OSError as e:  # a full disk, a closed stream
        silence_broken_pipe()
        try:
            sys.stderr.write(f"charchat: error: cannot write output: {e.strerror or e}\n")
            sys.stderr.flush()
        except OSError:
            pass
        sys.exit(1)
