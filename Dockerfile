# Production image: one image, several roles (web, ingest, answer), chosen by the command in docker-compose.yml.
# Build on a connected machine, then move the image into the office (docker save / docker load).
# GPU answer image (docker-compose.yml's answer-gpu): a CUDA devel base (nvcc for the CUDA backend) with CUDA's
# LLAMA_CMAKE_ARGS below; Python 3.11 is installed from the distribution there when the base lacks it.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
# bubblewrap: the PDF children's sandbox. Inside a container it needs user namespaces (e.g. `--security-opt
# seccomp=unconfined` or a profile allowing unshare); without them DOCS_SANDBOX=auto falls back to basic.
# tesseract-ocr-eng: the language data the OCR of scanned pages reads (add tesseract-ocr-<lang> for more languages
# and name them in DOCS_OCR_LANGUAGES). postgresql-client: pg_dump and pg_restore for `manage.py backup`/`restore`.
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git bubblewrap \
        tesseract-ocr tesseract-ocr-eng postgresql-client \
    && (command -v python3.11 >/dev/null || apt-get install -y --no-install-recommends python3.11 python3.11-venv) \
    && rm -rf /var/lib/apt/lists/* && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml ./
# llama.cpp with every x86 CPU variant as a loadable backend, never -march=native: the image runs on CPUs other
# than the build machine's, and the answer worker proves at start which variant runs (docs_app/adapters/
# llm_runtime.py). GPU answer image: build FROM a CUDA devel base with
#   --build-arg LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DLLAVA_BUILD=OFF -DGGML_CUDA=ON"
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DLLAVA_BUILD=OFF"
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
    && CMAKE_ARGS="$LLAMA_CMAKE_ARGS" pip install --no-cache-dir --no-binary llama-cpp-python . psycopg[binary]
COPY . .
ENV DJANGO_SETTINGS_MODULE=docs_app.settings HF_HUB_OFFLINE=1 ANONYMIZED_TELEMETRY=False \
    DOCS_DATA_DIR=/data DOCS_PRODUCTION=1
RUN DOCS_SECRET_KEY=build-only DOCS_ALLOWED_HOSTS=build python manage.py collectstatic --noinput -v0
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
USER 1000:1000
