"""Export a fitted network to run without fastnn: as an ONNX file (fastnn.export.onnx, its graph
in fastnn.export.graph), and python -m fastnn.export (command)."""
