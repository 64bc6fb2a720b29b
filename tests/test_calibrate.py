import numpy as np
import pytest
from conftest import TEXT, random_model
from test_cli import charchat

from charchat.chat.engine import Engine
from charchat.chat.sampling import probabilities
from charchat.errors import CharchatError
from charchat.modelfile import load_model, save_model
from charchat.train.calibrate import GRID, calibrate, fit_temperature, with_temperature
from charchat.train.evaluate import evaluate_file

CHARS = "".join(sorted(set(TEXT)))


def overconfident_model(tmp_path, scale=2.0):
    """A model that predicts TEXT's own character frequencies (at temperature 1 the best it
    can do with them), its logits multiplied by `scale`: the temperature that undoes that
    is `scale`."""
    model = random_model(chars=CHARS, seed=3)
    counts = np.array([TEXT.count(c) for c in model.vocab.chars], dtype=np.float64)
    model.tensors["head.weight"] = np.zeros_like(model.tensors["head.weight"])
    model.tensors["head.bias"] = (np.log(counts / counts.sum()) * scale).astype(np.float32)
    return save_model(model, tmp_path / "sure.safetensors")


@pytest.fixture
def held_out(tmp_path):
    path = tmp_path / "held.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_calibrated_model_at_temperature_1_is_the_model_at_its_temperature(tmp_path):
    model = random_model(chars=CHARS, seed=4)
    calibrated = with_temperature(model, 1.7, {"given": 1.7})
    plain, scaled = Engine(model), Engine(calibrated)
    for ch in "the will":
        plain.feed(model.vocab.index[ch])
        scaled.feed(model.vocab.index[ch])
        expected = probabilities(plain.logits(), 1.7)
        assert np.allclose(probabilities(scaled.logits()), expected, atol=1e-6)
    assert calibrated.card["calibration"] == {"temperature": 1.7, "given": 1.7}
    again = with_temperature(calibrated, 1.5, {"given": 1.5})
    assert again.card["calibration"]["temperature"] == pytest.approx(2.55)  # the product


def test_fitted_temperature_is_the_best_and_eval_agrees(tmp_path, held_out):
    path = overconfident_model(tmp_path)
    out = tmp_path / "calibrated.safetensors"
    calibrated, fit = calibrate(str(path), out, held_out)
    assert fit.temperature == 2.0
    assert fit.nats_after < fit.nats_before - 0.1
    plain = evaluate_file(str(path), held_out)
    assert fit.nats_before == pytest.approx(plain.nats_per_char, abs=1e-5)
    scored = evaluate_file(str(out), held_out)  # the file written scores what the fit said
    assert scored.nats_per_char == pytest.approx(fit.nats_after, abs=1e-4)
    for step in (-0.05, 0.05):  # and no nearby temperature does better
        other = with_temperature(load_model(path), fit.temperature + step, {})
        assert evaluate_file(other, held_out).nats_per_char >= fit.nats_after - 1e-6
    card = load_model(out).card["calibration"]
    assert card["fitted"] == fit.temperature and card["text"] == "held.txt"
    assert card["bits_after"] < card["bits_before"]


def test_scores_at_temperatures_match_scoring_a_scaled_model(tmp_path, held_out):
    path = tmp_path / "random.safetensors"
    save_model(random_model(chars=CHARS, seed=5), path)
    result = evaluate_file(str(path), held_out, tail=0.5, temperatures=(0.8, 1.0, 1.3))
    assert result.nats_at_temperatures[1] == pytest.approx(result.nats_per_char, abs=1e-5)
    for t, nats in zip((0.8, 1.3), result.nats_at_temperatures[::2], strict=True):
        scaled = with_temperature(load_model(path), t, {})
        assert evaluate_file(scaled, held_out, tail=0.5).nats_per_char == pytest.approx(
            nats, abs=1e-5
        )


def test_a_fit_at_the_edge_of_the_grid_is_refused(tmp_path, held_out):
    path = overconfident_model(tmp_path, scale=400.0)
    with pytest.raises(CharchatError, match="outside"):
        fit_temperature(load_model(path), held_out)
    assert GRID[0] == 0.5 and GRID[-1] == 3.0


def test_cli_fits_writes_and_reports(tmp_path, held_out):
    path = overconfident_model(tmp_path)
    out = tmp_path / "c.safetensors"
    result = charchat("calibrate", str(path), str(held_out), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"temperature ")
    assert b"bits/char" in result.stdout and f"saved {out}".encode() in result.stderr
    assert load_model(out).card["calibration"]["temperature"] == 2.0


def test_cli_applies_a_given_temperature(tmp_path):
    path = overconfident_model(tmp_path)
    out = tmp_path / "c.safetensors"
    result = charchat("calibrate", str(path), "--temperature", "1.15", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"temperature 1.15 (in all: 1.15)\n"
    head = load_model(out).tensors["head.bias"]
    assert np.allclose(head * 1.15, load_model(path).tensors["head.bias"], rtol=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give held-out text"),
        (["TEXT", "--temperature", "1.2"], "give held-out text"),
        (["--temperature", "0"], "must be from"),
        (["--temperature", "1.2", "--tail", "0.1"], "--tail picks"),
        (["TEXT", "--tail", "1.5"], "--tail must be"),
        (["missing.txt"], "missing.txt"),
    ],
)
def test_cli_bad_input_is_one_line_and_no_file(tmp_path, held_out, args, message):
    path = overconfident_model(tmp_path)
    out = tmp_path / "c.safetensors"
    args = [str(held_out) if a == "TEXT" else a for a in args]
    result = charchat("calibrate", str(path), *args, "-o", str(out))
    assert result.returncode != 0 and result.stdout == b""
    assert message.encode() in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".c.safetensors*"))


def test_cli_does_not_overwrite_without_force(tmp_path):
    path = overconfident_model(tmp_path)
    out = tmp_path / "c.safetensors"
    out.write_bytes(b"keep")
    args = ["calibrate", str(path), "--temperature", "1.2", "-o", str(out)]
    result = charchat(*args)
    assert result.returncode != 0 and b"exists" in result.stderr
    assert out.read_bytes() == b"keep"
    assert charchat(*args, "--force").returncode == 0
    assert load_model(out).card["calibration"]["temperature"] == 1.2


def test_info_shows_how_a_model_was_calibrated(tmp_path, held_out):
    from charchat.chat.looking import card_rows
    from charchat.chat.session import Session

    calibrated, _ = calibrate(str(overconfident_model(tmp_path)), tmp_path / "c", held_out, 0.5)
    row = dict(card_rows(Session(calibrated)))["calibration"]
    assert row.startswith("logits divided by 2, fitted on the last 50% of held.txt: ")
    given = with_temperature(random_model(), 1.14, {"given": 1.14})
    assert dict(card_rows(Session(given)))["calibration"] == "logits divided by 1.14"
    odd = random_model()
    odd.card["calibration"] = {"temperature": "hot"}  # a hand-made card: no row, no error
    assert "calibration" not in dict(card_rows(Session(odd)))
