"""The playbook's SLO targets and alert rules (params/thresholds.yaml) and the one percentile method."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import yaml

from . import paths
from .findings import Severity


def load_thresholds(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """params/thresholds.yaml with an environment's overrides merged in."""
    base = yaml.safe_load((paths.params_dir() / "thresholds.yaml").read_text())
    return _merge(base, overrides or {})


def _merge(base: dict, overrides: Mapping) -> dict:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def percentiles(values: Iterable[float], method: str = "inverted_cdf",
                qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, Any]:
    """P50/P95/P99 of the samples with one pinned method, plus the count they rest on."""
    arr = np.asarray([v for v in values if v is not None and not np.isnan(v)], dtype=float)
    result: dict[str, Any] = {"count": int(arr.size), "method": method}
    for q in qs:
        result[f"p{q}"] = float(np.percentile(arr, q, method=method)) if arr.size else None
    return result


def grade(value: float, warning: float, critical: float) -> Severity:
    """CRITICAL above the alert threshold, WARNING above the target, else OK."""
    if value > critical:
        return Severity.CRITICAL
    if value > warning:
        return Severity.WARNING
    return Severity.OK
