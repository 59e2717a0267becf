"""Render per-environment specs under deployments/ into manifests under rendered/ for Argo CD to sync."""
