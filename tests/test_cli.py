"""The command line through a real subprocess: train, eval, models, help, bad input."""

import os
import subprocess
import sys

import pytest

from charchat.modelfile import load_model

TRAIN_FAST = [
    "--layers",
    "1",
    "--hidden",
    "16",
    "--embedding",
    "8",
    "--seq-len",
    "16",
    "--batch-size",
    "4",
    "--epochs",
    "1",
]


def charchat(*args, input=b"", env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "charchat", *args],
        input=input,
        capture_output=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def no_traceback_one_line(result):
    assert result.returncode != 0
    assert b"Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\n"
        "from charchat.cli import app\n"
        "for args in (['--help'], ['--version'], ['train', '--help']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert b"train" in result.stdout and b"eval" in result.stdout and b"models" in result.stdout


def test_chat_path_does_not_import_torch(tiny_model_path):
    code = (
        "import sys, io\n"
        "sys.argv = ['charchat', '-m', sys.argv[1], '-n', '5']\n"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(b'abc\\n'))\n"
        "from charchat.cli import app\n"
        "try:\n"
        "    app()\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tiny_model_path)], capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_version():
    result = charchat("--version")
    assert result.returncode == 0 and result.stdout.startswith(b"charchat ")


def test_train_then_eval_then_models(tmp_path, corpus_file):
    out = tmp_path / "m.safetensors"
    result = charchat("train", str(corpus_file), "--out", str(out), *TRAIN_FAST)
    assert result.returncode == 0, result.stderr
    assert b"saved" in result.stderr and b"T=0.2" in result.stderr and result.stdout == b""
    model = load_model(out)
    assert model.card["corpus"] == "corpus.txt"
    result = charchat("eval", str(out), str(corpus_file))
    assert result.returncode == 0
    assert b"bits/char" in result.stdout and b"skipped     0" in result.stdout
    again = charchat("train", str(corpus_file), "--out", str(out), *TRAIN_FAST)
    no_traceback_one_line(again)
    assert b"--force" in again.stderr
    models_dir = tmp_path / "models"
    result = charchat(
        "train",
        str(corpus_file),
        "--name",
        "mine",
        *TRAIN_FAST,
        env={"CHARCHAT_MODELS_DIR": str(models_dir)},
    )
    assert result.returncode == 0 and (models_dir / "mine.safetensors").is_file()
    listing = charchat("models", env={"CHARCHAT_MODELS_DIR": str(models_dir), "COLUMNS": "200"})
    assert b"mine" in listing.stdout and b"corpus.txt" in listing.stdout


def test_eval_tail_scores_the_held_out_part(tmp_path, corpus_file):
    out = tmp_path / "m.safetensors"
    charchat("train", str(corpus_file), "--out", str(out), *TRAIN_FAST)
    whole = charchat("eval", str(out), str(corpus_file))
    tail = charchat("eval", str(out), str(corpus_file), "--tail", "0.1")
    assert whole.stdout != tail.stdout and b"scored" in tail.stdout
    one_thread = charchat("eval", str(out), str(corpus_file), "--tail", "0.1", "--threads", "1")
    assert one_thread.stdout == tail.stdout
    assert whole.stderr == tail.stderr == b""  # no progress bar when stderr is not a terminal


@pytest.mark.parametrize(
    "content, message",
    [
        (None, b"no such file"),
        (b"", b"empty"),
        (b"ab", b"too short"),
        (b"\x00\x01\x02binary\x00", b"binary"),
        (b"caf\xe9 latin-1", b"UTF-8"),
    ],
)
def test_bad_corpora(tmp_path, content, message):
    corpus = tmp_path / "c.txt"
    if content is not None:
        corpus.write_bytes(content)
    result = charchat("train", str(corpus), "--out", str(tmp_path / "m.safetensors"), *TRAIN_FAST)
    no_traceback_one_line(result)
    assert message in result.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_an_empty_folder_as_corpus(tmp_path):
    (tmp_path / "texts").mkdir()
    result = charchat("train", str(tmp_path / "texts"), "--out", str(tmp_path / "m.safetensors"))
    no_traceback_one_line(result)
    assert b"holds no files" in result.stderr


def test_a_recipe_replayed_by_steps(tmp_path, corpus_file):
    out = tmp_path / "m.safetensors"
    fast = TRAIN_FAST[:-2]  # without --epochs
    args = ["--steps", "7", "--warmup-steps", "2", "--min-lr-ratio", "0.2", "--val-fraction", "0"]
    args += ["--restart-share", "0", "--locked-dropout"]
    result = charchat("train", str(corpus_file), "--out", str(out), *fast, *args)
    assert result.returncode == 0, result.stderr
    card = load_model(out).card
    assert card["steps"] == 7 and card["train_config"]["warmup_steps"] == 2
    assert card["train_config"]["restart_share"] == 0 and load_model(out).config.locked_dropout
    assert card["train_config"]["min_lr_ratio"] == 0.2 and card["val_fraction"] == 0
    other = str(tmp_path / "other.safetensors")
    both = charchat("train", str(corpus_file), "--out", other, "--steps", "7", "--epochs", "1")
    no_traceback_one_line(both)
    assert b"not both" in both.stderr


def test_unwritable_output(tmp_path, corpus_file):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = charchat(
            "train", str(corpus_file), "--out", str(locked / "m.safetensors"), *TRAIN_FAST
        )
        if os.geteuid() == 0:  # root writes anywhere; use a path under a file instead
            result = charchat(
                "train", str(corpus_file), "--out", str(corpus_file / "m.safetensors"), *TRAIN_FAST
            )
        no_traceback_one_line(result)
        assert b"cannot" in result.stderr
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"\x80\x04\x95pickle"])
def test_bad_model_files_for_eval_and_chat(tmp_path, corpus_file, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    for args in (["eval", str(bad), str(corpus_file)], ["-m", str(bad)]):
        result = charchat(*args, input=b"x\n")
        no_traceback_one_line(result)


def test_bad_option_values(tmp_path, corpus_file):
    result = charchat("train", str(corpus_file), "--out", str(tmp_path / "m"), "--hidden", "0")
    no_traceback_one_line(result)
    assert b"hidden must be a whole number from 1 to" in result.stderr
    result = charchat("train", str(corpus_file), "--out", str(tmp_path / "m"), "--lr", "-1")
    no_traceback_one_line(result)
    assert b"--lr must be a finite number above 0" in result.stderr
    result = charchat("eval", "nonexistent-model-x", str(corpus_file), "--threads", "0")
    no_traceback_one_line(result)
    assert b"threads" in result.stderr
    result = charchat(
        "train", str(corpus_file), "--out", str(tmp_path / "m"), "--restart-share", "2"
    )
    no_traceback_one_line(result)
    assert b"--restart-share must be from 0 to 1" in result.stderr
    for option, value in (("--weight-drop", "1"), ("--threads", "0")):
        result = charchat("train", str(corpus_file), "--out", str(tmp_path / "m"), option, value)
        no_traceback_one_line(result)
        assert option.lstrip("-").replace("-", " ") in result.stderr.decode()


def test_interrupted_training_says_how_to_resume(tmp_path, corpus_file):
    import signal
    import time

    big = tmp_path / "big.txt"
    big.write_text(corpus_file.read_text() * 40)
    out = tmp_path / "m.safetensors"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "charchat",
            "train",
            str(big),
            "--out",
            str(out),
            *TRAIN_FAST[:-2],
            "--epochs",
            "50",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (tmp_path / "m.ckpt.safetensors").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert b"--resume" in err and b"Traceback" not in err
    resumed = charchat("train", str(big), "--out", str(out), "--resume", "--minutes", "0.05")
    assert resumed.returncode == 0, resumed.stderr
    assert b"resumed at step" in resumed.stderr
