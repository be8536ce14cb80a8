"""Reporting: leaderboards (tables, plots, HTML) built from run records alone."""
