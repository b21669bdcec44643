"""The TFLite reader's own tables (``edgekit.runtime.tflite_graph``, which reads files without
LiteRT) match LiteRT's generated schema: operator codes and tensor types by number."""

from __future__ import annotations

import importlib

import pytest

from edgekit.runtime.tflite_graph import BUILTIN_OPERATORS, TENSOR_TYPES


def _schema():
    for module in ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    pytest.skip("neither LiteRT nor TensorFlow is installed: no generated TFLite schema to compare with")


def _by_number(enum_class) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


def test_operator_table_matches_the_schema():
    schema = _by_number(_schema().BuiltinOperator)
    assert dict(enumerate(BUILTIN_OPERATORS)) == schema


def test_tensor_type_table_matches_the_schema():
    schema = _by_number(_schema().TensorType)
    assert {i: name.upper() for i, name in enumerate(TENSOR_TYPES)} == schema
