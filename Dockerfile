# trackguard worker image (used by docker-compose.yml). Not built in CI: there is no Docker engine there.
# Stage one compiles the decision path with mypyc (streams/native.py); the image keeps the result,
# not the compiler. Without that stage the worker would run the Python build (~1.5x slower).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY config ./config
RUN pip install --no-cache-dir -e . "mypy==1.18.2" \
 && python -c 'import sys; from streams.native import main; sys.exit(main(["build"]))'

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY --from=build /app/streams ./streams
COPY config ./config
RUN pip install --no-cache-dir -e .
ENV TRACKGUARD_DATA_DIR=/data
VOLUME /data
EXPOSE 6066
ENTRYPOINT ["trackguard"]
CMD ["worker"]
