# DL Studio image: the same image runs the web process and the Celery training worker.
# Build for NVIDIA GPUs with:  docker compose build --build-arg TENSORFLOW_GPU=1
FROM python:3.11-slim-bookworm

ARG TENSORFLOW_GPU=0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    DATA_DIR=/data \
    PATH=/app/.venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm make curl bubblewrap \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir uv==0.13.9 \
 && useradd --create-home --uid 1000 studio

WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --python /usr/local/bin/python3.11 \
 && if [ "$TENSORFLOW_GPU" = "1" ]; then uv pip install --python .venv/bin/python "tensorflow[and-cuda]==2.21.0"; fi

COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

COPY . .
RUN npm run build \
 && DATA_DIR=/tmp/build SECRET_KEY=build-only python manage.py collectstatic --noinput --verbosity 0 \
 && rm -rf /tmp/build node_modules \
 && mkdir -p /data && chown studio /data

USER studio
VOLUME /data
EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py bootstrap && exec python manage.py serve --host 0.0.0.0 --port 8000"]
