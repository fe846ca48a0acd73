# agentcorp: headless AI workers in one image — virtual desktop (Xvfb + openbox), Debian's
# Chromium, the sample company's apps, the OCR engine, and agentcorp itself.
#
#   docker build -t agentcorp .
#   docker run --rm -v "$PWD/runs:/data" agentcorp run /opt/agentcorp/tasks/acme --sessions /data/sessions
#
# On a host without a registry, sandboxes/docker/build-and-test.sh makes the base image with
# debootstrap and builds this file with Podman, unchanged.

ARG BASE=debian:bookworm-slim

# --- build: wheels and a virtual environment ----------------------------------------------
FROM ${BASE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agentcorp ./agentcorp
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The host's CA bundle may be mounted as a build secret (never baked into a layer).
# rapidocr pulls the GUI build of OpenCV; the headless build is the same cv2 without X/GL libs.
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check ".[ray,demo]" \
 && cv="$(/opt/venv/bin/pip show opencv-python | sed -n 's/^Version: //p')" \
 && /opt/venv/bin/pip uninstall -y -q opencv-python \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps "opencv-python-headless==${cv}" \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python3*/site-packages/ray/jars

# --- runtime ----------------------------------------------------------------------------
FROM ${BASE}
LABEL org.opencontainers.image.title="agentcorp" \
      org.opencontainers.image.description="Headless agentcorp workers: Xvfb desktop, Chromium, office apps, OCR"
# Like the official slim images: no docs, man pages or translations from any package.
COPY sandboxes/docker/dpkg-slim.cfg /etc/dpkg/dpkg.cfg.d/agentcorp-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 ca-certificates libatomic1 \
      xvfb xauth x11-utils openbox xdotool at-spi2-core dbus-daemon \
      chromium \
      tesseract-ocr tesseract-ocr-eng \
      gnumeric mousepad fonts-dejavu-core \
      libglib2.0-0 \
      x11vnc novnc python3-websockify \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY --from=build /opt/venv /opt/venv
COPY tasks /opt/agentcorp/tasks
COPY sandboxes /opt/agentcorp/sandboxes
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin agent \
 && mkdir -p /data && chown agent:agent /data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    AGENTCORP_SESSIONS=/data/sessions \
    AGENTCORP_SKILLS_DIR=/data/skills \
    AGENTCORP_CHROMIUM=/usr/bin/chromium
USER 10001:10001
WORKDIR /home/agent
VOLUME ["/data"]
# noVNC (6080) and raw VNC (5900) only listen when --live-view is asked for, with a password.
EXPOSE 5900 6080
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 CMD ["agentcorp", "doctor", "--quiet"]
# Run with --init (docker/podman) so a tiny init reaps the desktop's processes.
ENTRYPOINT ["agentcorp"]
CMD ["--help"]
