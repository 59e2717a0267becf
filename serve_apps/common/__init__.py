"""Parts every serve app uses: model artifacts, the prediction log, metrics and replica plumbing."""
