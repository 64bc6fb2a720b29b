"""The command line: a thin translator from core calls and errors to output and exit codes.

torch is imported only inside `train` and `eval`, so `--help`, `--version`, `models` and the
chat start fast.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer
from typer.core import TyperGroup

from charchat import __version__
from charchat import settings as spec
from charchat.cli_serve import serve
from charchat.cli_train import train
from charchat.errors import CharchatError


class Commands(TyperGroup):
    """Every command runs through invoke: the one place an error becomes a line and a code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CharchatError as e:
            write_error(str(e))
            raise typer.Exit(e.exit_code) from None


app = typer.Typer(
    cls=Commands,
    add_completion=False,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Talk to a character-level LSTM: type a few characters, watch it continue them.\n\n"
    "Bare `charchat` starts a chat on the default model (piped stdin: each line is a prompt "
    "or a /command).",
)


Mode = Enum("Mode", {name.replace("-", "_"): name for name in spec.MODES}, type=str)


def fail(message: str, code: int = 1) -> None:
    """One clear line on stderr and an exit code."""
    write_error(message)
    raise typer.Exit(code)


def write_error(message: str) -> None:
    from charchat.style import error_line

    sys.stderr.write(error_line(message))
    sys.stderr.flush()


def option_help(setting) -> str:
    text = spec.help_text(setting)
    return text[0].upper() + text[1:] + "."


HELP = {setting.field: option_help(setting) for setting in spec.CHAT_OPTIONS}


ADAPT_LR_HELP = (
    f"With --adapt: the step size, {spec.ADAPT_LR.describe()} "
    f"[default: the model card's, else {spec.ADAPT_LR.default:g}]."
)
ADAPT_STRETCH_HELP = (
    f"With --adapt: characters scored, then learnt from, {spec.ADAPT_STRETCH.describe()} "
    f"[default: the model card's, else {spec.ADAPT_STRETCH.default}]."
)


def version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"charchat {__version__}\n")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def chat(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", "-m", help="Model name or path."),
    temp: float = typer.Option(
        spec.TEMPERATURE.default, spec.TEMPERATURE.flag, "-t", help=HELP[spec.TEMPERATURE.field]
    ),
    mode: Mode = typer.Option(spec.MODE.default, spec.MODE.flag, help=HELP[spec.MODE.field]),
    top_k: int = typer.Option(spec.TOP_K.default, spec.TOP_K.flag, help=HELP[spec.TOP_K.field]),
    top_p: float = typer.Option(spec.TOP_P.default, spec.TOP_P.flag, help=HELP[spec.TOP_P.field]),
    min_p: float = typer.Option(spec.MIN_P.default, spec.MIN_P.flag, help=HELP[spec.MIN_P.field]),
    beam: int = typer.Option(
        spec.BEAM_WIDTH.default, spec.BEAM_WIDTH.flag, help=HELP[spec.BEAM_WIDTH.field]
    ),
    stop: list[str] = typer.Option(
        [],
        "--stop",
        help=r"End each turn right after this text (\n newline, \t tab, \s space); repeatable.",
    ),
    norepeat: int = typer.Option(
        spec.NO_REPEAT.default, spec.NO_REPEAT.flag, help=HELP[spec.NO_REPEAT.field]
    ),
    speed: float | None = typer.Option(
        None,
        spec.SPEED.flag,
        help=f"Characters shown a second, {spec.SPEED.describe()} "
        f"[default: {spec.SPEED.default:g} on a terminal, unpaced when piped].",
    ),
    session: str | None = typer.Option(
        None, "--session", help="Continue a session saved with /session save FILE."
    ),
    length: int = typer.Option(
        spec.LENGTH.default, spec.LENGTH.flag, "-n", help=HELP[spec.LENGTH.field]
    ),
    seed: int | None = typer.Option(spec.SEED.default, spec.SEED.flag, help=HELP[spec.SEED.field]),
    whole: bool = typer.Option(False, "--whole", help="Piped: all of stdin is one prompt."),
    echo: bool = typer.Option(False, "--echo", help="Piped: write each prompt before its text."),
    adapt: bool = typer.Option(
        False, "--adapt", help="Learn from what is typed or piped, once read (/adapt on)."
    ),
    adapt_lr: float | None = typer.Option(None, spec.ADAPT_LR.flag, help=ADAPT_LR_HELP),
    adapt_stretch: int | None = typer.Option(
        None, spec.ADAPT_STRETCH.flag, help=ADAPT_STRETCH_HELP
    ),
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
        adapt=adapt,
        adapt_lr=adapt_lr,
        adapt_stretch=adapt_stretch,
    )
    raise typer.Exit(run_chat(options, make_learner))


def make_learner(model, lr: float, stretch: int):
    """How a chat learns (/adapt): the torch half's learner, imported only when asked for."""
    from charchat.train.adapt import chat_learner

    return chat_learner(model, lr, stretch)


app.command()(train)
app.command()(serve)


@app.command("eval")
def evaluate(
    model: str = typer.Argument(..., help="Model name or path."),
    text: Path = typer.Argument(..., help="A UTF-8 text file to score."),
    tail: float | None = typer.Option(
        None, "--tail", help="Score only the last fraction of the text (0.1 = a held-out 10 %)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    adapt: bool = typer.Option(
        False,
        "--adapt",
        help="Also score while learning as it reads: one small step on each stretch just "
        "scored (dynamic evaluation).",
    ),
    adapt_lr: float | None = typer.Option(None, spec.ADAPT_LR.flag, help=ADAPT_LR_HELP),
    adapt_stretch: int | None = typer.Option(
        None, spec.ADAPT_STRETCH.flag, help=ADAPT_STRETCH_HELP
    ),
) -> None:
    """Bits per character of a model on a text: whole text, in order, state carried."""
    from charchat.terminal.reports import score_report
    from charchat.terminal.trainview import ScoringProgress
    from charchat.train.evaluate import evaluate_file

    for setting, value in ((spec.ADAPT_LR, adapt_lr), (spec.ADAPT_STRETCH, adapt_stretch)):
        if value is not None:
            setting.check_flag(value)
    with ScoringProgress(enabled=sys.stderr.isatty()) as progress:
        learning = (adapt_lr, adapt_stretch) if adapt else None
        result = evaluate_file(
            model, text, tail, threads, progress.start, progress.update, adapt=learning
        )
    sys.stdout.write(score_report(result))


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
    if out.exists() and not force:
        raise CharchatError(f"{out} exists (use --force to overwrite it)")
    from charchat.terminal.reports import calibration_report
    from charchat.terminal.trainview import ScoringProgress
    from charchat.train.calibrate import calibrate as run_calibration

    with ScoringProgress(enabled=sys.stderr.isatty() and text is not None) as progress:
        calibrated, fit = run_calibration(
            model, out, text, tail, temperature, threads, progress.start, progress.update
        )
    sys.stdout.write(calibration_report(calibrated, fit))
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
    from charchat.terminal.reports import report

    lines = report(model, corpus, temps, length, min_chars, prompt, seed)
    sys.stdout.write("".join(line + "\n" for line in lines))


@app.command()
def models() -> None:
    """List the bundled and user models."""
    from charchat.terminal.reports import models_table

    models_table()


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
