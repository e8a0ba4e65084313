"""The one base of every error the pipeline raises on purpose.

A `TradePipelineError` means "this cannot be done as asked, and the message says why": the
command line prints it as one line and exits 2; the Dagster layer shows it as the step's
failure. Each area subclasses it (often together with the built-in type it refines, so
`except ValueError` keeps working where a caller relied on it).
"""


class TradePipelineError(Exception):
    """A clear, expected failure: wrong input, wrong configuration, unreachable service."""
