#!/usr/bin/env bash
# Prepares the data directory and starts every process under honcho (see Procfile): web, Chroma server,
# Redis (unless one already listens on the port), an ingest worker, an answer worker and the reconciler.
set -euo pipefail
# Every process started from here (gunicorn, Celery, Chroma, Redis) creates its files readable by us alone.
umask 077
cd "$(dirname "$0")/.."
export DOCS_DATA_DIR="${DOCS_DATA_DIR:-$PWD/var}"
export DOCS_PORT="${DOCS_PORT:-8000}"
export DOCS_REDIS_PORT="${DOCS_REDIS_PORT:-6379}"
export DOCS_REDIS_URL="${DOCS_REDIS_URL:-redis://127.0.0.1:${DOCS_REDIS_PORT}/0}"
export DOCS_CHROMA_PORT="${DOCS_CHROMA_PORT:-8765}"
mkdir -p "$DOCS_DATA_DIR"
chmod 700 "$DOCS_DATA_DIR"
PY=.venv/bin/python
# The audit key lives outside the data directory (DOCS_AUDIT_KEY_FILE, default ./keys/): back it up apart from it.
$PY manage.py audit_key_create
$PY manage.py migrate --noinput -v0
$PY manage.py collectstatic --noinput -v0
$PY manage.py create_roles
$PY manage.py ensure_admin
$PY manage.py ensure_model
processes=(web chroma ingest answer reconciler)
if (echo >"/dev/tcp/127.0.0.1/${DOCS_REDIS_PORT}") 2>/dev/null; then
  echo "using the Redis server already listening on port ${DOCS_REDIS_PORT}"
else
  processes+=(redis)
fi
cat <<MSG

  Private Documents is starting: open http://127.0.0.1:${DOCS_PORT}/ and log in.
  Data lives in ${DOCS_DATA_DIR}. Stop with Ctrl-C.

MSG
exec .venv/bin/honcho start -f Procfile "${processes[@]}"
