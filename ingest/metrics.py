"""The ingester's Prometheus metrics, in a registry of its own so that several ingesters can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class IngestMetrics:
    """Counters and gauges an operator watches: throughput, duplicates, dead letters, commit latency, lag."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("semon_ingest_received", "Messages received from the broker", registry=r)
        self.stored = Counter("semon_ingest_stored", "Telemetry and event rows new to the database", registry=r)
        self.duplicates = Counter("semon_ingest_duplicates",
                                  "Messages already stored (redeliveries, monitor resends)", registry=r)
        self.statuses = Counter("semon_ingest_statuses", "Status messages applied", registry=r)
        self.dead_lettered = Counter("semon_ingest_dead_lettered", "Messages kept in the dead-letter table",
                                     ["reason"], registry=r)
        self.fields_refused = Counter("semon_ingest_fields_refused",
                                      "Telemetry values that cannot be true, refused and kept in rejected_fields",
                                      registry=r)
        self.fields_misspelt = Counter("semon_ingest_fields_misspelt",
                                       "Unknown telemetry fields named like a contract field, kept in extra and "
                                       "reported in rejected_fields", registry=r)
        self.batch_size = Histogram("semon_ingest_batch_size", "Messages per committed transaction",
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000), registry=r)
        self.commit_seconds = Histogram("semon_ingest_commit_seconds", "Time to write and commit one batch",
                                        buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=r)
        self.buffer_depth = Gauge("semon_ingest_buffer_depth", "Messages received and not yet committed", registry=r)
        self.lag_seconds = Gauge("semon_ingest_lag_seconds",
                                 "Receive-to-commit time of the oldest message of the last batch", registry=r)
        self.read_pauses = Counter("semon_ingest_read_pauses",
                                   "Times the buffer was full and the ingester stopped reading from the broker",
                                   registry=r)
        self.db_retries = Counter("semon_ingest_database_retries", "Batch writes retried after a database error",
                                  registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics over HTTP on host:port."""
        start_http_server(port, addr=host, registry=self.registry)
