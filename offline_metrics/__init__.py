"""Upstream's metric networks, offline: not a plugin but infrastructure of upstream's metric code, which finds
`detectors.local_detector(url, device)` through the entry-point group `stylegan2_ada.feature_detectors` (patch 0015,
pyproject.toml) and asks it before downloading a network."""
