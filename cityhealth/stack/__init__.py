"""The local stack: Mosquitto, Kafka (KRaft) and InfluxDB 1.x on loopback (Grafana optional).

``cityhealth stack install | up | down | status`` is a thin CLI over :class:`StackManager`;
tests use the same manager on free ports in a temporary data directory.
"""

from cityhealth.stack.influx import create_databases, influx_query
from cityhealth.stack.install import install
from cityhealth.stack.kafka import create_topics
from cityhealth.stack.manager import StackManager, UpResult
from cityhealth.stack.process import StackError

__all__ = [
    "StackError",
    "StackManager",
    "UpResult",
    "create_databases",
    "create_topics",
    "influx_query",
    "install",
]
