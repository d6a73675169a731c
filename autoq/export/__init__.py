"""Export of a chosen trial for a board: ONNX (QDQ), .qbin packed weights, C source + header,
manifest.json. ``autoq.export.qbin`` needs only NumPy; the rest builds the Keras model (TF).

Public entry point: :func:`autoq.export.exporter.export_trial` (``autoq export``).
"""
