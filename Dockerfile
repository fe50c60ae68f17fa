# Production image: one image, several roles (web, ingest, answer), chosen by the command in docker-compose.yml.
# Build on a connected machine, then move the image into the office (docker save / docker load).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml ./
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir . psycopg[binary]
COPY . .
ENV DJANGO_SETTINGS_MODULE=docs_app.settings HF_HUB_OFFLINE=1 ANONYMIZED_TELEMETRY=False \
    DOCS_DATA_DIR=/data DOCS_PRODUCTION=1
RUN DOCS_SECRET_KEY=build-only DOCS_ALLOWED_HOSTS=build python manage.py collectstatic --noinput -v0
USER 1000:1000
