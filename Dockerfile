# logtail as a streaming sidecar: one process, PID 1, non-root, read-only root filesystem.
#
#   podman build -t logtail-sidecar .            (or: docker build -t logtail-sidecar .)
#   podman build --build-arg BASE_IMAGE=localhost/my-python -t logtail-sidecar .
#
# BASE_IMAGE is used for both stages: the virtual environment built in the first one holds
# absolute links to its interpreter (/usr/local/bin/python3 on python:*-slim, /usr/bin/python3
# on Debian), so it only runs on the same image it was built on.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# Tools (pip, and hatchling through pip's isolated build) live in their own environment; the
# runtime environment is created without pip and filled from outside, so it ships no installer.
RUN python3 -m venv /opt/tools \
 && python3 -m venv --without-pip /opt/logtail
WORKDIR /src
COPY . .
RUN /opt/tools/bin/pip wheel --no-deps --wheel-dir /tmp/dist . \
 && /opt/tools/bin/pip --python /opt/logtail/bin/python install /tmp/dist/*.whl \
 && /opt/logtail/bin/logtail --version

FROM ${BASE_IMAGE} AS runtime
ARG BASE_IMAGE
ARG VERSION=unknown
LABEL org.opencontainers.image.title="logtail" \
      org.opencontainers.image.description="Follows log files like tail -n+1 -F and prints every line on stdout: a streaming sidecar for Kubernetes Pods." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
COPY --from=build /opt/logtail /opt/logtail
# Unbuffered: a line reaches the container log as soon as it is written. No bytecode writes:
# the root filesystem is read-only; the wheel's modules were compiled at install time.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/logtail/bin:$PATH
# Numeric, so Kubernetes can check runAsNonRoot without an /etc/passwd entry.
USER 65532:65532
WORKDIR /
# Exec form: logtail is PID 1 and receives SIGTERM itself, then drains every file before exiting.
ENTRYPOINT ["logtail"]
