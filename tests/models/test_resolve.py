"""The --model grammar, read in one place (specmusic.models.resolve) for classify, embed and recommend."""

from __future__ import annotations

import pytest

from specmusic.errors import ModelError
from specmusic.models.resolve import resolve_model


def test_each_kind_of_model_value(tmp_path) -> None:
    assert resolve_model("MFCC").kind == "mfcc"
    named = resolve_model("pretrained:jamendo-fcn")
    assert (named.kind, named.name) == ("named", "jamendo-fcn")
    assert resolve_model("missing/model.onnx").kind == "file"  # a path by its extension, checked when loaded
    joined = resolve_model("jamendo-fcn + mtat-musicnn")
    assert joined.kind == "joined" and [m.name for m in joined.members] == ["jamendo-fcn", "mtat-musicnn"]


def test_a_file_whose_name_has_a_plus_is_one_file(tmp_path) -> None:
    odd = tmp_path / "a+b.onnx"
    odd.write_bytes(b"")
    ref = resolve_model(str(odd))
    assert ref.kind == "file" and ref.path == odd


@pytest.mark.parametrize(("text", "message"), [
    ("no-such-net", "neither a model file nor a pretrained network"),
    ("jamendo-fcn+", "empty part"),
])
def test_bad_values_are_one_line(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        resolve_model(text)


def test_a_command_refuses_kinds_it_does_not_take() -> None:
    with pytest.raises(ModelError, match="takes no MFCC statistics"):
        resolve_model("mfcc", allow=("named", "file"))
    with pytest.raises(ModelError, match="joined by"):
        resolve_model("jamendo-fcn+mtat-musicnn", allow=("named", "file"))
    with pytest.raises(ModelError, match="not one model file"):
        resolve_model("jamendo-fcn+mtat-musicnn").ensure_path()
