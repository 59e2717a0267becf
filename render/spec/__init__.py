"""The typed spec: models, overlay merging and loading of deployments/."""
