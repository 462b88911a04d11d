"""cityhealth: glue for the smart-city health pipeline.

The domain lives in the design folders (``ingest``, ``streams``, ``kernels``,
``simulators``, ``dashboards``); this package holds only what ties them together:
the ``cityhealth`` command line, the typed settings and the local-stack manager.
"""

__version__ = "0.1.0"
