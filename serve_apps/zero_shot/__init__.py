"""Zero-shot text classification with all-MiniLM-L6-v2 in ONNX Runtime."""
