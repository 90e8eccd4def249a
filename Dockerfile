# trackguard worker image (used by docker-compose.yml). Not built in CI: there is no Docker engine there.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY config ./config
RUN pip install --no-cache-dir -e .
ENV TRACKGUARD_DATA_DIR=/data
VOLUME /data
EXPOSE 6066
ENTRYPOINT ["trackguard"]
CMD ["worker"]
