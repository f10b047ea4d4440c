# ConfBridge: the control plane and its local SFU workers, installed from the wheel.
#   docker build -t confbridge .
#   docker run -p 8000:8000 -p 8001:8001 -v confbridge-data:/data --env-file confbridge.env \
#     -e CONFBRIDGE_ADMIN_PASSWORD=... confbridge
# where confbridge.env holds CONFBRIDGE_SECRET_KEY and CONFBRIDGE_SFU__NODE_SECRET (two random
# strings, `openssl rand -hex 32`): the image refuses to start with the public defaults.
# The wheel carries its packages (confbridge, confbridge_kernel, sfu) and, as package data, the default
# config.yaml and the demo schedules; tests/test_dockerfile.py checks that the builder stage
# copies everything the wheel is built from.

# --- builder: the wheel, from the sources ------------------------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN pip install "build>=1.2"
COPY pyproject.toml README.md config.yaml ./
COPY src ./src
COPY sfu ./sfu
COPY schedules ./schedules
RUN python -m build --wheel --outdir /dist

# --- runtime: the wheel installed, nothing else of the sources -------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONFBRIDGE_ENV=production \
    CONFBRIDGE_DATA_DIR=/data \
    CONFBRIDGE_HOST=0.0.0.0 \
    CONFBRIDGE_SFU_HOST=0.0.0.0 \
    CONFBRIDGE_DEMO__ENABLED=false

COPY --from=builder /dist/ /tmp/dist/
RUN pip install /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && useradd --system --uid 10001 --user-group --home-dir /data --create-home \
       --shell /usr/sbin/nologin confbridge \
    && chmod 0700 /data

USER confbridge
WORKDIR /data
VOLUME ["/data"]
# 8000: the control plane (pages, API); 8001: the first local SFU worker (WHIP/WHEP); 7882/udp:
# its media, every session on that one port (worker i: 8001 + i and 7882 + i; publish them all).
EXPOSE 8000 8001 7882/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["confbridge", "serve", "--port", "8000"]
