# The engine's image: the `dispatch` CLI (api, worker, topics, replay, simulate).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dispatch ./dispatch
COPY projections ./projections
COPY schemas ./schemas
RUN pip install --no-cache-dir .
# Compile the matcher's search kernel into numba's on-disk cache at build time, so that a
# container starts without compiling it (and works on a read-only file system).
ENV NUMBA_CACHE_DIR=/app/.numba-cache
RUN python -c "from dispatch.matching.index import DriverIndex; DriverIndex()"
ENTRYPOINT ["dispatch"]
