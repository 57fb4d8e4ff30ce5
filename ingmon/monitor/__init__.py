"""Monitoring: the health model, signal and performance KPIs, the Prometheus exporter, alerts."""
