import json
import pickle
import struct

import numpy as np
import pytest
from conftest import random_model

from charchat.errors import CharchatError
from charchat.finding import available_models, bundled_dir, resolve_model
from charchat.modelfile import DEFAULT_MODEL, load_model, save_model, to_safetensors_bytes


def test_save_then_load_is_bit_identical(tmp_path):
    model = random_model(chars="ab😀é\n", layers=3, seed=3)
    model.card = {"corpus": "x.txt", "steps": 5}
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.vocab.chars == model.vocab.chars
    assert loaded.config == model.config
    assert loaded.card == model.card
    for name, tensor in model.tensors.items():
        assert loaded.tensors[name].tobytes() == tensor.tobytes()


def test_save_leaves_no_temp_files(tmp_path):
    save_model(random_model(), tmp_path / "m.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def _write_with_meta(path, tensors, meta):
    path.write_bytes(to_safetensors_bytes(tensors, meta))
    return path


def _valid_parts():
    model = random_model()
    return dict(model.tensors), {"charchat": json.dumps(model.metadata())}, model


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p, good: p.write_bytes(b""), "too short"),
        (lambda p, good: p.write_bytes(good[: len(good) // 2]), "truncated"),
        (lambda p, good: p.write_bytes(b"hello, I am a text file, not a model"), "not safetensors"),
        (lambda p, good: p.write_bytes(pickle.dumps({"a": [1, 2, 3]})), "not a model file"),
        (
            lambda p, good: p.write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"\0" * 10),
            "not JSON",
        ),
    ],
)
def test_corrupt_files_are_refused(tmp_path, make, message):
    good = tmp_path / "good.safetensors"
    save_model(random_model(), good)
    bad = tmp_path / "bad.safetensors"
    make(bad, good.read_bytes())
    with pytest.raises(CharchatError, match=message):
        load_model(bad)


def test_nan_weights_are_refused(tmp_path):
    tensors, meta, _ = _valid_parts()
    tensors["head.bias"] = tensors["head.bias"].copy()
    tensors["head.bias"][0] = np.nan
    with pytest.raises(CharchatError, match="NaN"):
        load_model(_write_with_meta(tmp_path / "m.safetensors", tensors, meta))


def test_wrong_shape_is_refused(tmp_path):
    tensors, meta, _ = _valid_parts()
    tensors["head.bias"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(CharchatError, match="shape"):
        load_model(_write_with_meta(tmp_path / "m.safetensors", tensors, meta))


def test_missing_tensor_and_wrong_dtype_are_refused(tmp_path):
    tensors, meta, _ = _valid_parts()
    del tensors["head.bias"]
    with pytest.raises(CharchatError, match="missing head.bias"):
        load_model(_write_with_meta(tmp_path / "a.safetensors", tensors, meta))
    tensors, meta, _ = _valid_parts()
    tensors["head.bias"] = tensors["head.bias"].astype(np.float64)
    with pytest.raises(CharchatError, match="float32"):
        load_model(_write_with_meta(tmp_path / "b.safetensors", tensors, meta))


def _meta_with(**changes):
    _, _, model = _valid_parts()
    meta = model.metadata()
    meta.update(changes)
    return meta


@pytest.mark.parametrize(
    "meta, message",
    [
        ({}, "no metadata"),
        ({"charchat": "{not json"}, "not valid JSON"),
        ({"charchat": json.dumps([1, 2])}, "malformed"),
        ({"charchat": json.dumps(_meta_with(vocab="abc"))}, "vocabulary"),
        ({"charchat": json.dumps(_meta_with(vocab=["a", "a"]))}, "twice"),
        ({"charchat": json.dumps(_meta_with(config={"layers": 2}))}, "architecture"),
        (
            {
                "charchat": json.dumps(
                    _meta_with(config={"layers": 2, "hidden": 10**9, "embedding": 8, "dropout": 0})
                )
            },
            "hidden",
        ),
        (
            {
                "charchat": json.dumps(
                    _meta_with(
                        config={"layers": 8, "hidden": 8000, "embedding": 8000, "dropout": 0}
                    )
                )
            },
            "absurdly large",
        ),
        ({"charchat": json.dumps(_meta_with(format_version=99))}, "version"),
        (
            {
                "charchat": json.dumps(
                    _meta_with(
                        config={
                            "layers": 1,
                            "hidden": 8,
                            "embedding": 8,
                            "dropout": 0,
                            "weight_drop": 1.5,
                        }
                    )
                )
            },
            "weight drop",
        ),
        (
            {
                "charchat": json.dumps(
                    _meta_with(
                        config={"layers": 1, "hidden": 8, "embedding": 8, "dropout": 0, "x": 1}
                    )
                )
            },
            "architecture",
        ),
    ],
)
def test_bad_metadata_is_refused_before_loading_tensors(tmp_path, meta, message):
    tensors, _, _ = _valid_parts()
    with pytest.raises(CharchatError, match=message):
        load_model(_write_with_meta(tmp_path / "m.safetensors", tensors, meta))


def test_files_from_before_weight_drop_still_load(tmp_path):
    tensors, _, model = _valid_parts()
    meta = model.metadata()
    del meta["config"]["weight_drop"]
    loaded = load_model(
        _write_with_meta(tmp_path / "m.safetensors", tensors, {"charchat": json.dumps(meta)})
    )
    assert loaded.config.weight_drop == 0.0 and loaded.config.hidden == model.config.hidden


def test_absurd_header_length_is_refused_without_allocating(tmp_path):
    bad = tmp_path / "m.safetensors"
    bad.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(CharchatError, match="not a model file"):
        load_model(bad)


def test_models_are_found_by_name_in_the_user_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARCHAT_MODELS_DIR", str(tmp_path))
    save_model(random_model(), tmp_path / "mine.safetensors")
    assert resolve_model("mine") == tmp_path / "mine.safetensors"
    assert ("mine", "user", tmp_path / "mine.safetensors") in available_models()
    with pytest.raises(CharchatError, match="no model named 'nope'"):
        resolve_model("nope")


def test_paths_are_taken_as_paths(tmp_path):
    path = save_model(random_model(), tmp_path / "x.safetensors")
    assert resolve_model(str(path)) == path


def test_the_default_model_is_bundled():
    assert (bundled_dir() / f"{DEFAULT_MODEL}.safetensors").is_file()
    load_model(resolve_model(None))


def test_files_without_a_learned_initial_state_still_load(tmp_path):
    old = random_model(initial_state=False)
    path = save_model(old, tmp_path / "old.safetensors")
    loaded = load_model(path)
    assert "initial_h" not in loaded.tensors and loaded.parameters == old.parameters
    half = random_model()
    del half.tensors["initial_c"]
    with pytest.raises(CharchatError, match="internal"):
        save_model(half, tmp_path / "half.safetensors")


def test_a_model_that_learnt_all_its_text_shows_its_tuning_runs_figure():
    from conftest import random_model

    from charchat.chat.looking import card_rows
    from charchat.chat.session import Session

    model = random_model()
    model.card.update(
        {"best_val_bits_per_char": None, "tuning_held_out": "1.3657 nats/char, 1.9703 bits/char"}
    )
    rows = dict(card_rows(Session(model)))
    assert rows["tuning run, held out"].startswith("1.3657") and "validation bits/char" not in rows
