"""The benchmarks: scripts run by hand from the repository root, ``python -m bench.<name>``
(docs/benchmarks.md lists them); ``bench.common`` holds what they share."""
