"""Grafana dashboards as code and their provisioning files.

`grafana.dashboards` builds the dashboards with Grafana's official grafana-foundation-sdk and
writes them as JSON next to its sources (`python -m grafana.dashboards`, or `make dashboards`);
`grafana/provisioning/` tells a Grafana server where to find them and the Prometheus datasource.
"""
