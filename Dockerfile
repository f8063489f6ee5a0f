# The bot's image: one image for workers and adapters; the command picks the role.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY bot ./bot
COPY adapters ./adapters
COPY jobs ./jobs
COPY sandbox ./sandbox
RUN uv sync --frozen --no-dev
ENV PATH="/app/.venv/bin:$PATH"
# Postgres and Redis come from the compose file; the embedded ones are for the no-Docker default only.
ENTRYPOINT ["bot"]
CMD ["--help"]
