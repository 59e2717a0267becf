"""Iris species classifier: scikit-learn logistic regression served from ONNX."""
