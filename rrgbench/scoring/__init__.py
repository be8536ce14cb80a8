"""Scoring: reports in, metric values out (the engine), external systems' reports, paired comparisons."""
