# ConfBridge control plane: a slim image that runs `confbridge serve` as a non-root user.
#   docker build -t confbridge .
#   docker run -p 8000:8000 -e CONFBRIDGE_SECRET_KEY=... -e CONFBRIDGE_ADMIN_PASSWORD=... \
#     -v confbridge-data:/data confbridge
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CONFBRIDGE_ENV=production \
    CONFBRIDGE_DATA_DIR=/data \
    CONFBRIDGE_CONFIG=/app/config.yaml \
    CONFBRIDGE_DEMO__ENABLED=false \
    CONFBRIDGE_DEMO__SCHEDULE_FILE=/app/schedules/ha-long.yaml

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --uid 10001 --home-dir /data --create-home confbridge
COPY config.yaml ./config.yaml
COPY schedules ./schedules

USER confbridge
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["confbridge", "serve", "--host", "0.0.0.0", "--port", "8000"]
