# The serving image: Ray Serve and the model apps of serve_apps/, for KubeRay, ECS and Cloud Run. Models are not
# baked in: each replica fetches its artifact (s3:// or file://) and checks its sha256 when it starts.
# Build with `nox -s image` (it prepares image/build-ca.crt and image/wheels/ first).
#
# BASE_IMAGE: the official Python image pinned by digest. CHECK THE DIGEST before a release
# (`docker buildx imagetools inspect python:3.11-slim-bookworm`); it was written without registry access.
# Machines without a registry build on a local Debian bookworm image with Python 3.11 instead
# (`--build-arg BASE_IMAGE=local/debian-python:bookworm`, made by debootstrap).
# VARIANT=gpu swaps onnxruntime for onnxruntime-gpu (image/requirements-gpu.lock); its BASE_IMAGE must then carry
# the CUDA 12 runtime and cuDNN 9 with Python 3.11. Built here on the local base (2.34 GB, 2026-12-04): the lock
# installs and onnxruntime-gpu imports with its CUDA provider listed; it has never run on a GPU.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:7a3ed1226224bcc1fe5443262363d42f48cf832a4f4a6ebce8f9bad32ad2c3fa

FROM ${BASE_IMAGE} AS build
ARG VARIANT=cpu
# The machine's CA bundle, for pip only: package downloads may pass a TLS-inspecting proxy. Only this stage sees it.
COPY image/build-ca.crt /build/ca.crt
COPY image/requirements.lock image/requirements-gpu.lock /build/
# Wheels that are not on PyPI, copied from the machine's find-links (the CPU build of torch).
COPY image/wheels/ /build/wheels/
ENV PIP_CERT=/build/ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: --find-links /build/wheels \
        -r /build/requirements.lock \
    && if [ "$VARIANT" = gpu ]; then \
        /opt/venv/bin/pip uninstall --yes onnxruntime \
        && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: -r /build/requirements-gpu.lock; \
    fi

FROM ${BASE_IMAGE}
# bash and wget: KubeRay's probes run `bash -c "wget ..."` in the Ray containers. Versions follow the pinned base.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends bash wget \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home --shell /bin/bash ray
COPY --from=build /opt/venv /opt/venv
# The project last, in its own small layers: a change to serve_apps/ rebuilds only these.
# --no-build-isolation: setuptools comes from the lock, so installing needs nothing unlocked.
COPY pyproject.toml README.md /tmp/src/
COPY serve_apps /tmp/src/serve_apps
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation /tmp/src && rm -rf /tmp/src
# MODEL_CACHE_DIR: downloaded artifacts (and a local run's prediction log) in the user's home, which it owns;
# relative file:// model URIs resolve against the working directory, /home/ray.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODEL_CACHE_DIR=/home/ray/.cache/serving-models
USER 1000
WORKDIR /home/ray
EXPOSE 8000
# No ENTRYPOINT: each platform states its command (ECS and Cloud Run the rendered start script, KubeRay `ray start`).
CMD ["python", "-m", "serve_apps.entrypoint", "--help"]
