# One image for the project's services (bridge, worker, alerts, simulator); docker-compose.yml
# picks the command. The local stack (`cityhealth stack ...`) is not used inside containers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Numba's on-disk JIT cache must be writable by the unprivileged user.
    NUMBA_CACHE_DIR=/var/cache/cityhealth/numba

WORKDIR /app
COPY pyproject.toml README.md ./
COPY cityhealth ./cityhealth
COPY ingest ./ingest
COPY streams ./streams
COPY kernels ./kernels
COPY simulators ./simulators
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/cityhealth cityhealth \
    && mkdir -p /var/lib/cityhealth /var/cache/cityhealth/numba \
    && chown -R cityhealth /var/lib/cityhealth /var/cache/cityhealth

USER cityhealth
ENV CITYHEALTH_DATA_DIR=/var/lib/cityhealth
CMD ["cityhealth", "--help"]
