"""Ingest: the device contract and the MQTT -> Kafka bridge.

``ingest.contract`` is the single source of truth for what devices may publish;
simulators and stream workers import it, never the other way round.
"""
