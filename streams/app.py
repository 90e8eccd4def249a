"""The Faust app: topics -> hot path (core) -> RocksDB table + verdict topics.

Faust owns group membership, partition assignment (the source, repartition and changelog topics
are co-partitioned because one agent subscribes to both and they have the same partition count),
changelog recovery, standbys, offset commits and the web server. The decisions go through
`streams.hotpath` one batch at a time.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time

import faust
from confluent_kafka import KafkaException

from . import api, native, stores, web
from .hotpath import die, install, tune_gc
from .kafka import high_watermark_lags
from .settings import NUMBERS_TABLE, KafkaSecurity, Settings
from .store import PartitionStore
from .transactions import choose_hot_path

log = logging.getLogger("trackguard.app")


def broker_credentials(security: KafkaSecurity) -> faust.types.auth.CredentialsT | None:
    """The worker's Faust (aiokafka) clients authenticate as its confluent-kafka ones do."""
    context = ssl.create_default_context(cafile=security.cafile or None) if security.tls else None
    if security.sasl:
        return faust.SASLCredentials(
            username=security.username, password=security.password, mechanism=security.mechanism, ssl_context=context
        )
    return faust.SSLCredentials(context) if context else None


def faust_settings(settings: Settings, watermarks_lag: bool = False) -> dict:
    """`watermarks_lag`: the broker reports a high watermark short of the log's end (Tansu)."""
    return {
        "broker": "kafka://" + settings.broker.replace(",", ";"),
        "broker_credentials": broker_credentials(settings.kafka_security),
        "store": "rocksdb://",
        "datadir": str(settings.data_dir),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication,
        # Tansu (and Kafka) make a joining member wait for about half the session timeout.
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "key_serializer": "raw",
        "value_serializer": "raw",  # the table holds orjson bytes; the hot path encodes
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        # One fetch is one hot-path batch: bounded so that a backlog does not hold the first
        # verdict (and every commit) back behind tens of thousands of decisions.
        "broker_max_poll_records": settings.batch_max,
        "web_port": settings.web_port,
        "web_bind": settings.web_bind,
        # Other workers forward requests here for the partitions this worker owns.
        "web_host": settings.advertised_web_host,
        # Faust's own pages (/table/... shows any key's raw state, /router/... the assignment, the
        # statistics and graph pages) answer without a token: off. Every page served is one of
        # api.ROUTES, and web.guard_middleware refuses the rest and any unexpected Host.
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_metrics_enabled": False,
        "web_application_options": {"middlewares": [web.guard_middleware(settings)]},
        # Faust's recovery refuses a table whose persisted offset is past its changelog's high
        # watermark - 1. Where the watermark trails the log (Tansu: the last batch's base offset
        # + 1), every table Faust writes in batches (the stores table) is refused at the restart
        # after a kill: a false alarm, its state holds exactly what the changelog does. On a
        # broker with exact watermarks the check stays: there it means data was removed from the
        # changelog, and the worker stops on it (streams.hotpath.die names it).
        "recovery_consistency_check": not watermarks_lag,
    }


def create_app(settings: Settings) -> faust.App:
    markers = {"always": True, "never": False}.get(settings.changelog_markers)
    how = f"[kafka] changelog_markers = {settings.changelog_markers}"
    if markers is None:
        markers = high_watermark_lags(settings)
        how = (
            "probed: the broker reports high watermarks short of the log's end (Tansu)"
            if markers
            else "probed: the broker reports exact high watermarks"
        )
    app = faust.App(settings.app_id, **faust_settings(settings, watermarks_lag=markers))
    app.trackguard_settings = settings  # type: ignore[attr-defined]

    # One record per normalized tracking number: everything the rules need (see core.rules.State).
    numbers = app.Table(
        NUMBERS_TABLE,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        help="state per normalized tracking number",
    )
    hot_topics = (settings.topics.submitted, settings.repartition_topic, settings.topics.commands)
    submissions = app.topic(*hot_topics, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    hot, guarantee = choose_hot_path(settings, PartitionStore(numbers), markers)

    @app.task
    async def announce() -> None:  # logged once the worker's logging is set up
        log.info("processing guarantee: %s", guarantee)
        log.info("decision path: %s", native.build)  # compiled (mypyc) or the Python reference
        tune_gc()  # start-up objects frozen out of the collector's sight, fewer young collections
        log.info("changelog markers %s (%s)", "on" if markers and not hot.transactional else "off", how)

    app.trackguard_hotpath = hot  # type: ignore[attr-defined]

    @app.agent(submissions, name="guard")
    async def guard(stream: faust.StreamT) -> None:
        # This agent only declares the subscription (and so the co-partitioned assignment): the
        # hot path takes these topics' records straight from the consumer, in batches.
        async for event in stream.events():
            die(f"a submission reached the Faust stream, so the hot path is not installed: {event.message.tp}")

    install(app, hot, set(hot_topics))
    store_table = stores.wire(app, settings)
    web.register(
        app,
        settings,
        hot,
        numbers,
        store_table,
        api.Access(settings.tokens, settings.admin_token, settings.peer_secret),
    )

    unreachable_since: list[float] = []

    @app.timer(5.0)
    async def broker_watchdog() -> None:
        """Stop loudly when the broker lost our topics or stays unreachable.

        The embedded broker keeps everything in memory: after a restart it answers again, but with
        no topics, offsets or groups. A worker going on would hold state that no topic backs.
        """
        loop = asyncio.get_running_loop()
        try:
            metadata = await loop.run_in_executor(None, lambda: hot.producer.list_topics(timeout=5))
        except KafkaException as exc:
            unreachable_since.append(time.monotonic())
            if time.monotonic() - unreachable_since[0] > settings.broker_lost_after_s:
                die(f"broker {settings.broker} unreachable for {settings.broker_lost_after_s:.0f} s", exc)
            return
        unreachable_since.clear()
        missing = [
            t
            for t in hot_topics
            if t not in metadata.topics or len(metadata.topics[t].partitions) != settings.partitions
        ]  # auto-created anew
        if missing:
            die(
                f"broker {settings.broker} no longer has topics {missing}: it lost its data (the embedded "
                f"broker keeps everything in memory); restart the workers on wiped data dirs"
            )

    if not markers and not hot.transactional:  # exactly once persists them after its commits

        @app.timer(2.0)
        async def persist_changelog_offsets() -> None:
            await hot.persist_offsets()

    @app.timer(10.0)
    async def report() -> None:
        if hot.totals:
            t = hot.timing
            log.info(
                "decided so far: %s; %d batches, %.0f records/batch, %.2f s deciding, %.2f s waiting for acks",
                dict(sorted(hot.totals.items())),
                t["batches"],
                t["records"] / max(t["batches"], 1),
                t["decide_s"],
                t["flush_s"],
            )

    return app
