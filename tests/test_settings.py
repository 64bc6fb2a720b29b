"""One source of settings: the CLI, the slash commands, /help, the session and the README
agree on every default and bound."""

import re
from pathlib import Path

import pytest
import typer
from conftest import random_model
from typer.testing import CliRunner

from charchat import settings as spec
from charchat.chat import commands
from charchat.chat.session import Session
from charchat.cli import app
from charchat.errors import CommandError
from charchat.terminal.launch import FLAGS

README = Path(__file__).resolve().parent.parent / "README.md"
SLASH = {  # session field -> slash command
    "temperature": "temp",
    "mode": "mode",
    "top_k": "topk",
    "top_p": "topp",
    "min_p": "minp",
    "beam_width": "beam",
    "norepeat": "norepeat",
    "speed": "speed",
    "length": "len",
    "seed": "seed",
}


def cli_option(flag: str):
    command = typer.main.get_command(app)
    return next(p for p in command.params if flag in p.opts)


def out_of_range(setting) -> list[str]:
    if isinstance(setting, spec.Choice):
        return ["fancy"]
    values = [setting.low - 1, setting.high + 1, "nan"]
    if setting.low_open:
        values.append(setting.low)
    if setting.whole:
        values.append(setting.low + 0.5)
    return [str(v) for v in values]


@pytest.mark.parametrize("field", list(FLAGS))
def test_cli_default_is_the_settings_default(field):
    flag, setting = FLAGS[field]
    default = cli_option(flag).default
    if field == "speed":  # paced on a terminal only, which the help says
        assert default is None and f"{setting.default:g} on a terminal" in cli_option(flag).help
        return
    if field.startswith("adapt_"):  # the model card's fitted value first, which the help says
        assert default is None and f"else {setting.default:g}]" in cli_option(flag).help
        return
    assert getattr(default, "value", default) == setting.default


def test_session_defaults_are_the_settings_defaults():
    session = Session(random_model())
    assert session.settings.temperature == spec.TEMPERATURE.default
    assert (session.settings.mode, session.settings.top_k) == (
        spec.MODE.default,
        spec.TOP_K.default,
    )
    assert (session.settings.top_p, session.length) == (spec.TOP_P.default, spec.LENGTH.default)


@pytest.mark.parametrize("field", list(SLASH))
def test_cli_and_slash_command_refuse_the_same_values_with_the_same_words(field, tiny_model_path):
    flag, setting = FLAGS[field]
    runner = CliRunner()
    for value in out_of_range(setting):
        result = runner.invoke(app, ["-m", str(tiny_model_path), flag, value], input="x\n")
        with pytest.raises(CommandError) as slash:
            commands.parse(f"/{SLASH[field]} {value}")
        reason = str(slash.value).split(": ", 1)[1]  # without the "/temp: " prefix
        if result.exit_code == 2 and "Usage:" in result.output:
            # typer refused a non-number for a whole-number flag before we saw it
            assert isinstance(setting, spec.Choice) or setting.whole
            continue
        assert result.exit_code == 2, (value, result.output)
        assert reason.split(", not")[0] in result.output, (value, result.output)


@pytest.mark.parametrize("field", ["adapt_lr", "adapt_stretch"])
def test_flags_without_a_slash_command_refuse_what_the_setting_refuses(field, tiny_model_path):
    flag, setting = FLAGS[field]
    for value in out_of_range(setting):
        result = CliRunner().invoke(app, ["-m", str(tiny_model_path), flag, value], input="x\n")
        assert result.exit_code == 2, (value, result.output)
        if "Usage:" not in result.output:  # typer refuses 1.5 for a whole number itself
            assert f"{flag}: {setting.what} must be" in result.output
            assert setting.describe() in result.output
        assert setting.describe() in cli_option(flag).help


def test_every_flag_is_tested_with_its_slash_command_or_alone():
    assert set(FLAGS) == set(SLASH) | {"adapt_lr", "adapt_stretch"}


@pytest.mark.parametrize("field", list(SLASH))
def test_help_and_cli_help_state_the_same_bounds(field):
    flag, setting = FLAGS[field]
    command_help = commands.help_text(SLASH[field])
    assert setting.describe() in command_help or field == "mode" and "top-p" in command_help
    if field not in ("seed", "mode"):
        assert setting.describe() in cli_option(flag).help


def test_the_bounds_read_as_written():
    """describe() itself, pinned: the two helps above agree because they share it."""
    assert spec.TEMPERATURE.describe() == "from 0 to 100 (0 = greedy)"
    assert spec.TOP_P.describe() == "above 0, up to 1"
    assert spec.SEED.describe() == "from 0 to 2^63-1"
    assert "from 0 to 100 (0 = greedy)" in cli_option("--temp").help
    assert "from 1 to 100000" in commands.help_text("len")


def test_readme_command_table_is_the_command_table():
    text = README.read_text(encoding="utf-8")
    assert commands.markdown_table() in text
    listed = re.findall(r"^\| `/(\w+)", text, flags=re.M)
    assert listed == [c.name for c in commands.COMMANDS]
