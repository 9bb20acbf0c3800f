"""The ONNX graph of a fitted network: an input stage, the layers, and an output stage chosen by
the model's output kind. Built node by node with onnx.helper; the weights go in as they are, in
the model's dtype.

Importing this imports onnx: fastnn.export.onnx checks that it is installed first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fastnn.core.model import LEAKY_SLOPE

# Opset 17 (ONNX 1.12) has every operator used here in the form used here (Softmax over one
# axis came with 13), and onnxruntime has run it since 1.13; the IR version is the oldest that
# opset needs, so that older runtimes read the file too.
OPSET = 17
IR_VERSION = helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)])

INPUT_NAME = "X"  # as skl2onnx names the input of a converted scikit-learn model
BATCH = "N"  # the rows: any number


class Network(Protocol):
    """What the graph reads of a fitted fastnn estimator."""

    coefs_: list[np.ndarray]
    intercepts_: list[np.ndarray]
    activation: str

    def _check_fitted(self) -> None: ...


class Graph:
    """Nodes and constant tensors added in order; each node's one output is named by the
    caller, so the graph reads like the network's equations."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.element_type = helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes: list[onnx.NodeProto] = []
        self.constants: dict[str, onnx.TensorProto] = {}

    def constant(self, name: str, value: Any, dtype: Any = None) -> str:
        """A constant tensor of `dtype` (default: the model's dtype), added once under its
        name however many nodes take it; returns the name."""
        if name not in self.constants:
            array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
            self.constants[name] = numpy_helper.from_array(array, name)
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        """Add the node op(inputs) -> output; returns the output's name."""
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def floats(self, name: str, columns: int) -> onnx.ValueInfoProto:
        """An (N, columns) tensor of the model's dtype, as a graph input or output."""
        return helper.make_tensor_value_info(name, self.element_type, [BATCH, columns])


# -- input ----------------------------------------------------------------------------------------


def input_stage(graph: Graph, kind: str, n_features: int) -> tuple[onnx.ValueInfoProto, str]:
    """The graph's input, and the name of the (N, n_features) floats the first layer takes.

    pixels: uint8 0..255, scaled inside the graph as fastnn.core.model.scale_pixels does (cast
    to the model's dtype, then divided by 255 in it, which gives the very same numbers).
    floats: the model's dtype, used as they are.
    """
    if kind == "floats":
        return graph.floats(INPUT_NAME, n_features), INPUT_NAME
    pixels = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [BATCH, n_features])
    cast = graph.node("Cast", [INPUT_NAME], "pixels", to=graph.element_type)
    return pixels, graph.node("Div", [cast, graph.constant("pixel_max", 255)], "scaled")


# -- layers ---------------------------------------------------------------------------------------


def relu(graph: Graph, z: str, out: str) -> str:
    return graph.node("Relu", [z], out)


def leaky_relu(graph: Graph, z: str, out: str) -> str:
    # LeakyRelu's slope is a float32 attribute, so a float64 graph would multiply by
    # 0.00999999977648 where fastnn multiplies by 0.01. There max(z, slope * z), the same
    # function for a slope below 1, takes the slope as a float64 constant.
    if np.float32(LEAKY_SLOPE) == graph.dtype.type(LEAKY_SLOPE):
        return graph.node("LeakyRelu", [z], out, alpha=LEAKY_SLOPE)
    sloped = graph.node("Mul", [z, graph.constant("leaky_slope", LEAKY_SLOPE)], f"{z}_sloped")
    return graph.node("Max", [z, sloped], out)


HIDDEN_ACTIVATIONS: dict[str, Callable[[Graph, str, str], str]] = {
    "relu": relu,
    "leaky_relu": leaky_relu,
}


def layers(graph: Graph, model: Network, x: str) -> str:
    """Z = A @ W + b layer by layer, the hidden activation between; returns the last Z."""
    activate = HIDDEN_ACTIVATIONS[model.activation]
    a, last = x, len(model.coefs_)
    for number, (W, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=True), 1):
        weights = [graph.constant(f"W{number}", W), graph.constant(f"b{number}", b)]
        z = graph.node("Gemm", [a, *weights], "logits" if number == last else f"Z{number}")
        a = z if number == last else activate(graph, z, f"A{number}")
    return a


# -- outputs --------------------------------------------------------------------------------------


def class_labels(classes: np.ndarray) -> np.ndarray:
    """classes_ as an ONNX tensor can hold them: whole numbers as int64, strings as strings,
    floats and booleans as they are. Raises ValueError for labels of other kinds."""
    if classes.dtype == object:  # e.g. from a pandas column: the type its values share
        inferred = np.array(classes.tolist())
        if inferred.dtype != object and inferred.shape == classes.shape:
            return class_labels(inferred)
    kind = classes.dtype.kind
    if kind in "iu":
        if classes.size and int(classes.max()) > np.iinfo(np.int64).max:
            raise ValueError("class labels above 2**63 - 1 do not fit ONNX's int64 labels")
        return classes.astype(np.int64)
    if kind in "US":
        return classes.astype(object)
    if kind == "b" or classes.dtype in (np.float32, np.float64):
        return classes
    raise ValueError(
        f"class labels of type {classes.dtype} ({classes[:3].tolist()} ...) have no ONNX "
        "tensor type; export a model trained with whole numbers or strings as labels"
    )


def softmax_outputs(graph: Graph, model: Network, logits: str) -> list[onnx.ValueInfoProto]:
    """One class per row: `probabilities` (N, n_classes), columns in classes_ order, and
    `label` (N,), the class of the highest probability (the first of equals, as predict)."""
    labels = class_labels(np.asarray(model.classes_))
    probabilities = graph.node("Softmax", [logits], "probabilities", axis=1)
    best = graph.node("ArgMax", [probabilities], "best", axis=1, keepdims=0)
    graph.node("Gather", [graph.constant("classes", labels, labels.dtype), best], "label", axis=0)
    label_type = helper.np_dtype_to_tensor_dtype(labels.dtype)  # object: strings
    return [
        helper.make_tensor_value_info("label", label_type, [BATCH]),
        graph.floats("probabilities", len(labels)),
    ]


def logistic_outputs(graph: Graph, model: Network, logits: str) -> list[onnx.ValueInfoProto]:
    """Labels that are each on or off (multilabel): `probabilities` (N, n_labels), each label's
    sigmoid, and `label` (N, n_labels), 1 where its probability is above 0.5, else 0 (int64)."""
    probabilities = graph.node("Sigmoid", [logits], "probabilities")
    above = graph.node("Greater", [probabilities, graph.constant("half", 0.5)], "above_half")
    graph.node("Cast", [above], "label", to=TensorProto.INT64)
    n_labels = model.coefs_[-1].shape[1]
    return [
        helper.make_tensor_value_info("label", TensorProto.INT64, [BATCH, n_labels]),
        graph.floats("probabilities", n_labels),
    ]


def identity_outputs(graph: Graph, model: Network, logits: str) -> list[onnx.ValueInfoProto]:
    """Regression: `variable` (N, n_outputs), the last layer's values as they are."""
    graph.node("Identity", [logits], "variable")
    return [graph.floats("variable", model.coefs_[-1].shape[1])]


# By the model's out_activation_ (scikit-learn's name for it): a new kind of output is one
# function here.
OUTPUT_STAGES: dict[str, Callable[[Graph, Network, str], list[onnx.ValueInfoProto]]] = {
    "softmax": softmax_outputs,
    "logistic": logistic_outputs,
    "identity": identity_outputs,
}


def output_kind(model: Network) -> str:
    """The model's output kind; a classifier from before out_activation_ existed is softmax."""
    return getattr(model, "out_activation_", "softmax")


def check_exportable(model: Network) -> None:
    """Raise ValueError unless the graph can express the model's activations."""
    if model.activation not in HIDDEN_ACTIVATIONS:
        raise ValueError(
            f"cannot export the hidden activation {model.activation!r} to ONNX; "
            f"exportable: {', '.join(HIDDEN_ACTIVATIONS)}"
        )
    kind = output_kind(model)
    if kind not in OUTPUT_STAGES:
        raise ValueError(
            f"cannot export the output kind {kind!r} to ONNX; exportable: "
            f"{', '.join(OUTPUT_STAGES)}"
        )


def build_graph(model: Network, input_kind: str, metadata: dict[str, str]) -> onnx.ModelProto:
    """The whole model: input stage, layers, output stage, checked by onnx's checker."""
    check_exportable(model)
    graph = Graph(model.coefs_[0].dtype)
    x_info, x = input_stage(graph, input_kind, model.coefs_[0].shape[0])
    outputs = OUTPUT_STAGES[output_kind(model)](graph, model, layers(graph, model, x))
    proto = helper.make_model(
        helper.make_graph(graph.nodes, "fastnn", [x_info], outputs, list(graph.constants.values())),
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="fastnn",
    )
    helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def signature(proto: onnx.ModelProto) -> str:
    """The graph's inputs and outputs in a line: "X uint8 (N, 784) -> label int64 (N), ..."."""

    def described(value: onnx.ValueInfoProto) -> str:
        tensor = value.type.tensor_type
        dims = ", ".join(d.dim_param or str(d.dim_value) for d in tensor.shape.dim)
        return f"{value.name} {TensorProto.DataType.Name(tensor.elem_type).lower()} ({dims})"

    inputs = ", ".join(map(described, proto.graph.input))
    return f"{inputs} -> {', '.join(map(described, proto.graph.output))}"
