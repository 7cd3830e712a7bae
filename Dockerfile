# qflowui image: gunicorn serving Django by default; the same image runs the Celery worker,
# Celery beat, the migrations and (in the demo) the QFlow simulator: see docker-compose.yml
# and compose.demo.yml, which also give each service its own health check (the image has
# none: an HTTP check would fail in a worker or beat container).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    QFLOWUI_VAR_DIR=/app/var \
    DJANGO_STATIC_ROOT=/app/staticfiles

RUN apt-get update \
 && apt-get install -y --no-install-recommends graphviz \
 && rm -rf /var/lib/apt/lists/*

# A non-root user with a writable home (gunicorn keeps its control socket in ~/.gunicorn).
RUN groupadd --system --gid 10001 qflowui \
 && useradd --system --uid 10001 --gid qflowui --home-dir /home/qflowui --create-home \
      --shell /usr/sbin/nologin qflowui

WORKDIR /app
COPY requirements.txt .
RUN pip install --root-user-action=ignore -r requirements.txt

COPY manage.py ./
COPY qflowui ./qflowui
COPY templates ./templates
COPY static ./static

# Static files are collected now, into /app/staticfiles (read-only, part of the image), not
# into var/: var/ is a volume for what must persist (beat's schedule, the demo password).
# collectstatic needs settings but no secrets or services.
# Bytecode compiled now too: every process and health check starts without compiling.
RUN DJANGO_SECRET_KEY=collectstatic-only QFLOWUI_VAR_DIR=/tmp/build-var \
      python manage.py collectstatic --noinput -v 0 \
 && python -m compileall -q qflowui \
 && rm -rf /tmp/build-var \
 && mkdir -p /app/var \
 && chown qflowui:qflowui /app/var

USER qflowui
ENV HOME=/home/qflowui
EXPOSE 8000
# Port 8000; WEB_CONCURRENCY worker processes (default 3); see qflowui/gunicorn_conf.py.
CMD ["gunicorn", "qflowui.wsgi", "--config", "python:qflowui.gunicorn_conf"]
