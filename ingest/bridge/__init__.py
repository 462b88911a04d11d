"""The MQTT -> Kafka ingest bridge (``cityhealth ingest``); design in docs/INGEST.md."""

from ingest.bridge.bridge import Bridge
from ingest.bridge.config import BridgeConfig, default_client_id
from ingest.bridge.session import subscription_filter
from ingest.bridge.stats import BridgeStats

__all__ = ["Bridge", "BridgeConfig", "BridgeStats", "default_client_id", "subscription_filter"]
