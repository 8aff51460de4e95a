"""The performance targets, in one place: the benchmarks diagnose by them, the report gives each its verdict."""

INGEST_VS_FLOOR = 0.5  # engine ÷ floor activities/s, at least
INGEST_PG_VS_FLOOR = 0.85  # and on PostgreSQL from INGEST_PG_FROM activities on (issue 25: COPY page writes)
INGEST_PG_FROM = 100_000
INGEST_VS_GUIDE = 10.0  # engine ÷ guide activities/s, at least
NOTHING_NEW_REQUESTS = 2  # SnapTrade requests of a scheduled sync that finds nothing new, at most
MEMORY_RATIO = 1.5  # peak RSS of the large sync ÷ the small one, at most
MEMORY_PEAK_BYTES = 300_000_000  # and the large sync's peak under 300 MB
PAGE_MS = 50.0  # p95 of the Transactions page query and of data_version
AGGREGATION_MS = 300.0  # p95 of totals, filter options and analytics aggregations
BROWSER_SECONDS = 2.0  # median navigation → rendered Transactions table
ONBOARDING_REQUESTS = 7  # SnapTrade requests per new connection: registration to finished initial import, at most


def query_ms(group: str, name: str) -> float:
    return PAGE_MS if group == "page" or name == "data_version" else AGGREGATION_MS


def memory_met(ratio: float | None, large_peak_bytes: float) -> bool:
    return ratio is not None and ratio <= MEMORY_RATIO and large_peak_bytes < MEMORY_PEAK_BYTES


def ingest_vs_floor(db: str, size: int) -> float:
    return INGEST_PG_VS_FLOOR if db == "postgresql" and size >= INGEST_PG_FROM else INGEST_VS_FLOOR
