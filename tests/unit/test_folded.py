"""Folded stacks text <-> DataFrame."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

import bpfnb
from bpfnb.errors import BpfnbError
from bpfnb.io import folded
from bpfnb.io.folded import FoldedFormatError, read_folded, write_folded

TEXT = "bash;main;read_loop;read 7\nbash;main;write 3\npython3;Py_Main;eval 12\n"


def test_read_text_gives_stack_and_integer_value():
    df = read_folded(TEXT)
    assert list(df.columns) == ["stack", "value"]
    assert df["stack"].tolist() == ["bash;main;read_loop;read", "bash;main;write", "python3;Py_Main;eval"]
    assert df["value"].tolist() == [7, 3, 12]
    assert df["value"].dtype == np.int64


def test_public_names_are_the_module_functions():
    assert bpfnb.read_folded is read_folded
    assert bpfnb.write_folded is write_folded


def test_read_path_binary_and_text_file_objects(tmp_path):
    path = tmp_path / "p.folded"
    path.write_text(TEXT)
    expected = read_folded(TEXT)
    for source in (path, str(path), io.BytesIO(TEXT.encode()), io.StringIO(TEXT), open(path, "rb")):
        pd.testing.assert_frame_equal(read_folded(source), expected)


def test_small_blocks_split_lines_correctly(tmp_path, monkeypatch):
    lines = [f"comm;f{i};g{i % 7};leaf with space {i + 1}" for i in range(500)]
    path = tmp_path / "big.folded"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(folded, "_BLOCK", 13)  # shorter than any line: the buffer must grow
    df = read_folded(path)
    assert len(df) == 500
    assert df["stack"].iloc[499] == "comm;f499;g2;leaf with space"
    assert df["value"].sum() == sum(range(1, 501))


def test_frames_with_spaces_blank_lines_and_crlf():
    df = read_folded("Web Content;main;poll 5\r\n\n  \nfirefox;[unknown] 2\n")
    assert df["stack"].tolist() == ["Web Content;main;poll", "firefox;[unknown]"]
    assert df["value"].tolist() == [5, 2]


def test_fractional_counts_read_as_float():
    df = read_folded("a;b 1.5\na;c 2\n")
    assert df["value"].dtype == np.float64
    assert df["value"].tolist() == [1.5, 2.0]


def test_missing_count_names_the_line():
    with pytest.raises(FoldedFormatError, match="line 2 .*no count"):
        read_folded("a;b 1\na;b;c\n")


def test_non_numeric_count_is_reported():
    with pytest.raises(FoldedFormatError, match="'x1' .*not a number"):
        read_folded("a;b 1\nc;d x1\n")


def test_missing_file_is_a_bpfnb_error(tmp_path):
    with pytest.raises(BpfnbError, match="does not exist"):
        read_folded(tmp_path / "nope.folded")


def test_round_trip_is_exact():
    text = "a;b;c 1\na;b 22\nx y;z 333\n"
    assert write_folded(read_folded(text)) == text


def test_write_prepends_key_columns_as_root_frames(tmp_path):
    df = pd.DataFrame(
        {"comm": ["bash", "sshd"], "pid": [10, 20], "stack": ["main;read", "main;poll"], "value": [4, 9]}
    )
    assert write_folded(df) == "bash;10;main;read 4\nsshd;20;main;poll 9\n"
    assert write_folded(df, keys=["comm"]) == "bash;main;read 4\nsshd;main;poll 9\n"
    assert write_folded(df, keys=[]) == "main;read 4\nmain;poll 9\n"
    out = tmp_path / "o.folded"
    assert write_folded(df, out, keys=["comm"]) is None
    back = read_folded(out)
    assert back["stack"].tolist() == ["bash;main;read", "sshd;main;poll"]


def test_write_float_values_keeps_fractions():
    df = pd.DataFrame({"stack": ["a", "b"], "value": [1.0, 2.5]})
    assert write_folded(df) == "a 1.0\nb 2.5\n"
    assert write_folded(pd.DataFrame({"stack": ["a"], "value": [3.0]})) == "a 3\n"


def test_write_rejects_frames_without_stack_columns():
    with pytest.raises(FoldedFormatError, match="'stack' and 'value'"):
        write_folded(pd.DataFrame({"x": [1]}))


# -- exporters ------------------------------------------------------------------
# The parts of speedscope's published schema
# (https://www.speedscope.app/file-format-schema.json) for what bpfnb emits:
# the file, shared frames and a sampled profile.
SPEEDSCOPE_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$ref": "#/definitions/FileFormat.File",
    "definitions": {
        "FileFormat.File": {
            "type": "object",
            "properties": {
                "$schema": {"type": "string", "const": "https://www.speedscope.app/file-format-schema.json"},
                "shared": {
                    "type": "object",
                    "properties": {
                        "frames": {"type": "array", "items": {"$ref": "#/definitions/FileFormat.Frame"}}
                    },
                    "required": ["frames"],
                },
                "profiles": {
                    "type": "array",
                    "items": {"anyOf": [{"$ref": "#/definitions/FileFormat.SampledProfile"}]},
                },
                "name": {"type": "string"},
                "activeProfileIndex": {"type": "number"},
                "exporter": {"type": "string"},
            },
            "required": ["$schema", "profiles", "shared"],
        },
        "FileFormat.Frame": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "file": {"type": "string"},
                "line": {"type": "number"},
                "col": {"type": "number"},
            },
            "required": ["name"],
        },
        "FileFormat.SampledProfile": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "const": "sampled"},
                "name": {"type": "string"},
                "unit": {"$ref": "#/definitions/FileFormat.ValueUnit"},
                "startValue": {"type": "number"},
                "endValue": {"type": "number"},
                "samples": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                "weights": {"type": "array", "items": {"type": "number"}},
            },
            "required": ["type", "name", "unit", "startValue", "endValue", "samples", "weights"],
        },
        "FileFormat.ValueUnit": {
            "type": "string",
            "enum": ["none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"],
        },
    },
}

# d3-flame-graph's input: a tree of {name, value (inclusive), children[, delta]}
D3_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$ref": "#/definitions/node",
    "definitions": {
        "node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "value": {"type": "number", "minimum": 0},
                "delta": {"type": "number"},
                "children": {"type": "array", "items": {"$ref": "#/definitions/node"}},
            },
            "required": ["name", "value"],
        }
    },
}

STACKS_DF = pd.DataFrame(
    {"comm": ["bash", "bash", "sshd"], "stack": ["main;read", "main;write", "main;poll"], "value": [5, 3, 2]}
)


def test_speedscope_export_matches_schema_and_content(tmp_path):
    import json

    jsonschema = pytest.importorskip("jsonschema")
    from bpfnb.io.speedscope import to_speedscope, write_speedscope

    doc = to_speedscope(STACKS_DF, name="cpu", unit="us")
    jsonschema.validate(doc, SPEEDSCOPE_SCHEMA)
    frames = [f["name"] for f in doc["shared"]["frames"]]
    prof = doc["profiles"][0]
    stacks = [";".join(frames[i] for i in s) for s in prof["samples"]]
    assert stacks == ["bash;main;read", "bash;main;write", "sshd;main;poll"]  # root first
    assert prof["weights"] == [5, 3, 2] and prof["endValue"] == 10 and prof["unit"] == "microseconds"
    assert len(frames) == len(set(frames)) == 6
    path = write_speedscope(STACKS_DF, tmp_path / "p.speedscope.json")
    jsonschema.validate(json.loads(open(path).read()), SPEEDSCOPE_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "$schema": "x"}, SPEEDSCOPE_SCHEMA)  # the schema bites


def test_d3_export_is_a_tree_with_inclusive_values(tmp_path):
    import json

    jsonschema = pytest.importorskip("jsonschema")
    from bpfnb.io.d3flame import to_d3, write_d3

    tree = to_d3(STACKS_DF)
    jsonschema.validate(tree, D3_SCHEMA)
    assert tree["name"] == "root" and tree["value"] == 10
    bash = tree["children"][0]
    assert (bash["name"], bash["value"]) == ("bash", 8)
    main = bash["children"][0]
    assert [(c["name"], c["value"]) for c in main["children"]] == [("read", 5), ("write", 3)]

    def check(node):  # a parent is never narrower than its children
        assert node["value"] >= sum(c["value"] for c in node.get("children", []))
        for c in node.get("children", []):
            check(c)

    check(tree)
    diff = to_d3(STACKS_DF, other=STACKS_DF.assign(value=[1, 3, 6]))
    jsonschema.validate(diff, D3_SCHEMA)
    read = diff["children"][0]["children"][0]["children"][0]
    assert (read["name"], read["delta"]) == ("read", 4)
    path = write_d3(STACKS_DF, tmp_path / "d3.json")
    assert json.loads(open(path).read()) == tree
