"""Validate rendered manifests against the real schemas they target before they are written."""
