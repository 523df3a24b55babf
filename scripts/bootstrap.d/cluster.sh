# Several analyzers as one (issue 14): etcd (shared state, election) and ClickHouse (flows and
# history) for the cluster and storage tests. The tests start their own servers on loopback; the
# packages' own services are not used (and not needed by the single-analyzer default).
APT_PACKAGES+=(etcd-server etcd-client clickhouse-server clickhouse-client)
