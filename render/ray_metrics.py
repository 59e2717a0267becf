"""The metrics the SLO rules and the dashboard read, named as Ray 2.60's Prometheus endpoint exports them.

Ray exports every metric of `ray.util.metrics` (which Serve's and the apps' are) with a `ray_` prefix (NAMESPACE in
ray/_private/telemetry/open_telemetry_metric_recorder.py), and its OpenTelemetry Prometheus exporter adds `_total` to
counters and `_bucket`/`_sum`/`_count` to histograms.
Each name below cites the file of Ray 2.60 (paths under the `ray` package) or of this repository that defines it,
with its labels. The PodMonitor's scrape adds `namespace` (and `pod`, `container`): the rules select by it, since two
environments may share a cluster and a Prometheus.
"""

from __future__ import annotations

# ray/serve/_private/request_ingress_metrics.py (RequestIngressMetrics, recorded by the proxy in proxy.py, by HAProxy
# in haproxy_metrics.py and by a direct-ingress replica in replica.py; the three never count one request twice):
# serve_num_http_requests {route, method, application, status_code}. Errors are read from its status_code: the same
# file's serve_num_http_error_requests counts every 4xx with the 5xx, under another label (error_code).
HTTP_REQUESTS = "ray_serve_num_http_requests_total"
# Same file: serve_http_request_latency_ms {method, route, application, status_code}, end to end at the ingress,
# buckets DEFAULT_LATENCY_BUCKET_MS of ray/serve/_private/constants.py (1 ms to 10 min).
HTTP_LATENCY_MS = "ray_serve_http_request_latency_ms"
# ray/serve/_private/deployment_state.py: serve_deployment_replica_healthy {deployment, application, replica}, 1 per
# healthy replica (RAY_SERVE_CONTROLLER_METRICS_INCLUDE_HIGH_CARDINALITY_TAGS, on by default; off, one series per
# deployment holding the count: a sum reads both).
REPLICAS_HEALTHY = "ray_serve_deployment_replica_healthy"
# Same file: serve_autoscaling_target_replicas {deployment, application}, the count the controller is reaching for
# (fixed num_replicas too).
REPLICAS_TARGET = "ray_serve_autoscaling_target_replicas"
# Same file: serve_replica_initialization_latency_ms {deployment, application}, the replica's constructor, where the
# apps fetch, verify and load their model (serve_apps/common/replica.py).
REPLICA_INIT_MS = "ray_serve_replica_initialization_latency_ms"
# ray/serve/_private/replica.py: serve_replica_processing_queries {deployment, replica, application}, requests the
# replica is working on (tags added by ray/serve/metrics.py).
REPLICA_ONGOING = "ray_serve_replica_processing_queries"
# serve_apps/common/metrics.py: serving_prediction_log_buffer_rows {app}, rows waiting for the database.
LOG_BUFFER_ROWS = "ray_serving_prediction_log_buffer_rows"
# Same file: serving_prediction_log_dropped_rows {app}, rows dropped (buffer full, or refused on every try).
LOG_DROPPED_ROWS = "ray_serving_prediction_log_dropped_rows_total"
# Same file: serving_generation_ttft_ms {app}, a histogram of the time to a generation's first token.
GENERATION_TTFT_MS = "ray_serving_generation_ttft_ms"
# Same file: serving_generation_inter_token_ms {app}, a histogram of the time between two tokens of a generation.
GENERATION_INTER_TOKEN_MS = "ray_serving_generation_inter_token_ms"  # noqa: S105 - a metric name, not a secret
# Same file: serving_generation_tokens {app}, tokens generated; its rate is tokens per second.
GENERATION_TOKENS = "ray_serving_generation_tokens_total"
# Same file: serving_generation_queue_depth {app}, generation requests waiting for a batch, per replica.
GENERATION_QUEUE_DEPTH = "ray_serving_generation_queue_depth"
# ray/dashboard/modules/reporter/reporter_agent.py: node_cpu_utilization {ip, IsHeadNode, RayNodeType, ...}, percent.
NODE_CPU_PERCENT = "ray_node_cpu_utilization"
# Same file: node_gpus_utilization {ip, GpuIndex, GpuDeviceName, ...}, percent, on nodes with a GPU.
NODE_GPU_PERCENT = "ray_node_gpus_utilization"
