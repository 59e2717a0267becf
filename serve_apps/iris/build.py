"""Train the iris classifier on scikit-learn's bundled data and convert it to ONNX."""

import json
from pathlib import Path

from serve_apps.iris.model import CLASS_NAMES_METADATA_KEY, INPUT_NAME, LABEL_OUTPUT, PROBABILITIES_OUTPUT

OPSET = 17


def build(target: Path) -> None:
    """Write the ONNX classifier (probabilities as a tensor, class names in the metadata) to `target`."""
    import numpy as np
    import onnx
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    # Newton-Cholesky converges to the optimum itself (to ~1e-12 whatever BLAS kernels the CPU selects); lbfgs on
    # float32 stopped early at weights that differed in the third decimal between OpenBLAS's kernel types, so a
    # clean clone on another CPU built bytes other than the sha256 the spec commits. Rounded to 4 decimals (the
    # nearest rounding boundary is 5.8e-7 away from any weight), the weights are the same on every machine.
    classifier = LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(iris.data, iris.target)
    classifier.coef_ = np.round(classifier.coef_, 4)
    classifier.intercept_ = np.round(classifier.intercept_, 4)
    model = to_onnx(
        classifier,
        initial_types=[(INPUT_NAME, FloatTensorType([None, iris.data.shape[1]]))],
        # Without zipmap the probabilities are a float tensor rather than a list of maps.
        options={id(classifier): {"zipmap": False}},
        target_opset=OPSET,
    )
    outputs = [output.name for output in model.graph.output]
    if outputs != [LABEL_OUTPUT, PROBABILITIES_OUTPUT]:
        raise RuntimeError(f"skl2onnx produced outputs {outputs}, expected {[LABEL_OUTPUT, PROBABILITIES_OUTPUT]}")
    onnx.helper.set_model_props(model, {CLASS_NAMES_METADATA_KEY: json.dumps(iris.target_names.tolist())})
    onnx.save(model, str(target))
