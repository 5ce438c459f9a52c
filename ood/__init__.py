"""oodstudy: reusable code behind the notebooks (data, models, detectors, metrics, reports)."""

__version__ = "0.1.0"
