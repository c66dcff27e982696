# The production image: `make image` builds it; deploy/kubernetes/deployment.yaml runs it.
# Slim Python, the package installed as a wheel, a non-root user, gunicorn exactly as the README runs it.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cds ./cds
COPY schemas ./schemas
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /srv/cds cds
COPY --from=build /install /usr/local
WORKDIR /srv/cds
ENV PYTHONUNBUFFERED=1 PROMETHEUS_MULTIPROC_DIR=/tmp/cds-metrics
USER cds
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["gunicorn", "-c", "python:cds.gunicorn_conf", "cds.wsgi:app", "--workers", "2", "--threads", "4", "--bind", "0.0.0.0:8080", "--timeout", "10", "--graceful-timeout", "20"]
