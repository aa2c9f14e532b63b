# logtail as a streaming sidecar: one process, PID 1, non-root, read-only root filesystem, and
# nothing else in the image: no shell, no package manager, no pip.
#
#   podman build -t logtail-sidecar .            (or: docker build -t logtail-sidecar .)
#   podman build --build-arg BASE_IMAGE=localhost/my-python -t logtail-sidecar .
#
# BASE_IMAGE is any Debian-based image with python3 (≥ 3.11) and its venv module: python:*-slim
# (interpreter under /usr/local) or Debian's python3 (under /usr). The build stage installs logtail
# there, then copies into /staging, at the same paths, only what logtail runs: the interpreter, the
# shared libraries that it and the kept extension modules link (as ldd finds them), the standard
# library compiled to bytecode without its sources, and logtail's virtual environment. The final
# stage is /staging on an empty image.
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
 && /opt/logtail/bin/logtail --version \
 && rm -f /opt/logtail/bin/activate* /opt/logtail/bin/Activate.ps1

# The standard library, less what a log follower never runs: test suites, GUI and terminal UI,
# the REPL's line editing, profilers, installers and packaging, build configuration, the base's
# own site-packages (pip, setuptools), demo modules, the modules deprecated for removal by PEP 594
# (with nis, the one that pulls in Kerberos), and TLS and databases (ssl, sqlite3, dbm: OpenSSL,
# SQLite and Berkeley DB are 8 MB of libraries and most of a scanner's report; hashlib keeps its
# built-in SHA-2). Everything else stays, whether logtail imports it today or not;
# tests/test_container.py runs every path that imports late and imports every module of logtail
# and its dependencies. It is compiled to bytecode beside where the sources were, without them.
# (Zipped into pythonXY.zip it took 7 MB less, but logtail started about 45 ms slower.)
RUN set -eu; cd /; \
    dynload=$(python3 -c 'import sys; print(next(p for p in sys.path if p.endswith("/lib-dynload")))'); \
    stdlib=$(dirname "$dynload"); \
    mkdir -p /staging; \
    cp -a --parents "$stdlib" /staging; \
    cd "/staging$stdlib"; \
    rm -rf test */test */tests idlelib tkinter turtledemo turtle.py curses ensurepip venv lib2to3 \
           distutils unittest pydoc.py pydoc_data doctest.py cProfile.py profile.py pstats.py \
           timeit.py trace.py tabnanny.py pyclbr.py \
           __hello__.py __phello__ antigravity.py this.py site-packages dist-packages config-* \
           EXTERNALLY-MANAGED LICENSE.txt \
           aifc.py asynchat.py asyncore.py cgi.py cgitb.py chunk.py crypt.py imghdr.py imp.py \
           mailcap.py nntplib.py pipes.py smtpd.py sndhdr.py sunau.py telnetlib.py uu.py xdrlib.py \
           ssl.py sqlite3 dbm shelve.py; \
    find . -name __pycache__ -prune -exec rm -rf {} +; \
    cd "/staging$dynload"; \
    rm -f _test* _ctypes_test* xx* _xx* _tkinter* _curses* readline* _lsprof* \
          _crypt* nis* ossaudiodev* audioop* spwd* _ssl* _hashlib* _sqlite3* _dbm* _gdbm*; \
    python3 -m compileall -q -b -j 0 -s /staging -p / "/staging$stdlib"; \
    find "/staging$stdlib" -name '*.py' -delete; \
    cd /; cp -a --parents /opt/logtail /staging

# The interpreter (and the chain of links to it from the environment's bin/python), the libraries
# ldd finds for it and every extension module, the dynamic loader, glibc's libgcc_s (dlopened by
# pthread_exit, so ldd cannot see it), and a loader cache for libraries outside the default
# directories (python:*-slim keeps libpython in /usr/local/lib).
RUN set -eu; cd /; \
    link=/opt/logtail/bin/python; \
    while [ -L "$link" ]; do \
      target=$(readlink "$link"); \
      case "$target" in /*) ;; *) target=$(dirname "$link")/$target ;; esac; \
      cp -a --parents "$target" /staging; \
      link=$target; \
    done; \
    exe=$(readlink -f /opt/logtail/bin/python); \
    find /staging -type f -name '*.so*' -exec sh -c 'for f; do ldd "$f"; done' sh "$exe" {} + >/tmp/ldd; \
    if grep 'not found' /tmp/ldd; then exit 1; fi; \
    libc=$(awk '$1 ~ /^libc\.so/ { print $3; exit }' /tmp/ldd); \
    { awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' /tmp/ldd; \
      echo "$(dirname "$libc")/libgcc_s.so.1"; } | sort -u | while read -r lib; do \
      cp -L --parents "$lib" /staging; \
    done; \
    cp -a --parents /etc/ld.so.conf /etc/ld.so.conf.d /staging; \
    ldconfig -r /staging; \
    rm -rf /staging/etc/ld.so.conf /staging/etc/ld.so.conf.d

FROM scratch
COPY --from=build /staging /
ARG BASE_IMAGE
ARG VERSION=unknown
# After the COPY, so that new contents get new labels (a cached LABEL step keeps its old values).
# base.name: where the interpreter and libraries come from, whose security updates call for a rebuild.
LABEL org.opencontainers.image.title="logtail" \
      org.opencontainers.image.description="Follows log files like tail -n+1 -F and prints every line on stdout: a streaming sidecar for Kubernetes Pods." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
# Unbuffered: a line reaches the container log as soon as it is written. No bytecode writes:
# the root filesystem is read-only, and everything was compiled in the build stage.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/logtail/bin
# Numeric, so Kubernetes can check runAsNonRoot without an /etc/passwd entry.
USER 65532:65532
WORKDIR /
# Exec form: logtail is PID 1 and receives SIGTERM itself, then drains every file before exiting.
ENTRYPOINT ["logtail"]
