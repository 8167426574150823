"""Constants shared by the ONNX exporter and importer (no onnx import at module level)."""

from __future__ import annotations

# What rtinfer writes: onnxruntime 1.31 accepts IR <= 13 and opset <= 26; Gelu needs opset 20,
# per-axis QuantizeLinear/DequantizeLinear with int8/int32 need opset >= 13.
EXPORT_IR_VERSION = 10
EXPORT_OPSET = 21

INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM = "N"

# Tensors larger than this (elements, from the declared dims alone) are refused at import.
MAX_TENSOR_ELEMENTS = 1 << 28
# ... and larger than this in bytes (elements x the element type's size), before any is read.
MAX_TENSOR_BYTES = 1 << 30
# Block-expanded weights (MatMul on an N-D runtime tensor) larger than this are refused.
MAX_EXPANDED_ELEMENTS = 1 << 24
