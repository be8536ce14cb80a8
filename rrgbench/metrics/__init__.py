"""Metrics: what each metric group computes from generated and reference reports (NLG, clinical efficacy,
RadGraph), the labelers CE metrics need, and the resampling statistics behind every CI and paired test."""
