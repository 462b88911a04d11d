"""Stream workers: Faust agents that decode columnar batches, run kernels, and sink results."""
