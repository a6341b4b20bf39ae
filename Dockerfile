# Horenso container image.
#   docker build -t horenso .
#   docker run --env-file .env -p 3000:3000 -v horenso-data:/app/data horenso
# Settings come from the environment (.env is not copied into the image; pass it with --env-file).
# `serve` applies migrations first; the SQLite default below lives in the /app/data volume.
# For PostgreSQL set DATABASE_URL=postgresql://user:pass@host:5432/db (psycopg 3, binary wheels).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system horenso \
    && useradd --system --gid horenso --home-dir /app --shell /usr/sbin/nologin horenso

WORKDIR /app
COPY . /app

# The same steps as `make install` (venv in .venv, editable install of the project), without the
# dev extras: `pip install -e '.[dev]'` (README, Makefile) adds pytest, ruff and friends, which
# are only needed to run the tests and linters, not the bot.
RUN python3 -m venv /app/.venv \
    && /app/.venv/bin/pip install -e . \
    && mkdir -p /app/data \
    && chown horenso:horenso /app/data

ENV PATH="/app/.venv/bin:${PATH}" \
    DATABASE_URL=sqlite:////app/data/horenso.db \
    PORT=3000

USER horenso
VOLUME ["/app/data"]
EXPOSE 3000

# /healthz answers 200 when the database answers, 503 otherwise (served in Socket Mode too).
# slim has no curl: use Python's urllib (an HTTP error or refused connection exits non-zero).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${PORT:-3000}/healthz', timeout=4)" || exit 1

CMD ["python", "-m", "bot", "serve"]
