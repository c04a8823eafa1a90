# The engine's image: the `dispatch` CLI (serve, worker, topics, replay, simulate).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dispatch ./dispatch
COPY projections ./projections
COPY schemas ./schemas
RUN pip install --no-cache-dir .
# Compile the matcher's search kernel into numba's on-disk cache at build time, for any
# x86-64 CPU, so that a container starts without compiling it. numba writes to its cache
# directory: with a read-only root file system, mount a writable volume there (the kernel
# is then compiled once at start, a few seconds).
ENV NUMBA_CACHE_DIR=/app/.numba-cache NUMBA_CPU_NAME=generic
RUN python -c "from dispatch.matching.index import DriverIndex; DriverIndex()"
ENTRYPOINT ["dispatch"]
