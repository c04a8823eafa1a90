# The engine's image: the `dispatch` CLI (api, worker, topics, replay, simulate).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dispatch ./dispatch
COPY projections ./projections
COPY schemas ./schemas
RUN pip install --no-cache-dir .
ENTRYPOINT ["dispatch"]
