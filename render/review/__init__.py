"""The review tools: what a change does (diff, impact, cost), promotion between environments and setting an image.

They read the spec and the rendered tree and never feed the render pipeline: `render.pipeline` imports nothing from
here, so data still flows one way, spec → plan → manifests → files, with review beside it.
"""
