"""Metric networks available offline. `detectors.local_detector(url, device)` is what upstream's
`metrics.metric_utils.get_feature_detector` (patched) asks before downloading a network."""
