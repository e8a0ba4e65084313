"""Resources, chosen per environment in one resolver (`build_resources`).

Every resource derives its paths from one `home` (or an explicit override), so tests and
users get isolated homes. Heavy clients (mlflow, redis) are imported lazily.
"""

import dagster as dg

from trade_pipeline.settings import HOME_ENV, Settings

# DuckDB allows one writer per file: every asset that writes the warehouse runs in this pool,
# whose limit is 1 (deploy/dagster.yaml and the demo instance set it).
DUCKDB_POOL = "duckdb_writer"


class PipelineResource(dg.ConfigurableResource):
    """The typed settings of one pipeline home."""

    home: str
    symbol: str = "BTCUSDT"
    exchange: str = "bybit"

    def settings(self) -> Settings:
        return Settings.load(home=self.home, symbol=self.symbol, exchange=self.exchange)


class MlflowResource(dg.ConfigurableResource):
    """A thin wrapper of MlflowClient; the URIs are always explicit (never the cwd).

    Empty URIs derive from the home's settings (SQLite store + local artifacts)."""

    home: str
    tracking_uri: str = ""
    artifact_uri: str = ""

    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or Settings.load(home=self.home).mlflow_tracking_uri

    def resolved_artifact_uri(self) -> str:
        return self.artifact_uri or Settings.load(home=self.home).mlflow_artifact_uri

    def client(self):
        # No mlflow.set_tracking_uri(): it exports the URI process-wide.
        from mlflow import MlflowClient

        uri = self.resolved_tracking_uri()
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


class RedisResource(dg.ConfigurableResource):
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "trade_pipeline"

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


def build_resources(home: str | dg.EnvVar | None = None, **overrides) -> dict:
    """The resources for one home. Default: the home from $TRADE_PIPELINE_HOME, resolved
    when a run starts (never at import)."""
    if home is None:
        home = dg.EnvVar(HOME_ENV)
    resources = {
        "pipeline": PipelineResource(home=home),
        "mlflow": MlflowResource(home=home),
        "redis": RedisResource(),
    }
    resources.update(overrides)
    return resources
