# The emaildoctor bot as a container: the wheel and its dependencies in a venv on a slim Python base,
# run as an unprivileged user. Build: `podman build -t emaildoctor .` (or docker build); see docs/operations.md.
# PYTHON_IMAGE must carry python3 with venv (python:3.12-slim does; so does an image made from Debian's
# python3 and python3-venv packages). Both stages use the same image, so the venv's python path holds.
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY plugin plugin
COPY graph graph
COPY bot bot
COPY sandbox sandbox
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir build \
 && /opt/build/bin/python -m build --wheel --outdir /dist . \
 && python3 -m venv /opt/emaildoctor \
 && /opt/emaildoctor/bin/pip install --no-cache-dir /dist/*.whl

FROM ${PYTHON_IMAGE}
# Only the installed wheel comes over: no sources, no build tools.
COPY --from=build /opt/emaildoctor /opt/emaildoctor
# A numeric user needs no useradd (minimal Debian images lack it); /var/lib/emaildoctor holds the SQLite
# store when no PostgreSQL URL is given.
RUN mkdir -p /var/lib/emaildoctor && chown 10001:10001 /var/lib/emaildoctor
USER 10001:10001
WORKDIR /var/lib/emaildoctor
# No EMAILDOCTOR_ settings here: the environment outranks `--env-file`, so one set in the image would hide
# the operator's. The XDG folders put the defaults where the image expects them: the store at
# /var/lib/emaildoctor/emaildoctor.db, the directory file at /etc/emaildoctor/directory.yaml.
ENV PATH=/opt/emaildoctor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    XDG_DATA_HOME=/var/lib \
    XDG_CONFIG_HOME=/etc
EXPOSE 3000
# Liveness: /healthz answers while the HTTP server runs. /readyz (store, Slack, a Microsoft 365 token) is
# readiness: an orchestrator's readiness probe belongs there, not here, since a container restarted because
# Microsoft or the database is down comes back no better. HTTP mode only: Socket Mode serves no health
# endpoint yet, so run it with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4)"]
ENTRYPOINT ["emaildoctor"]
CMD ["bot", "--host", "0.0.0.0", "--port", "3000"]
