"""Feature statistics, drift and freshness."""
