"""Regenerates the small sample inputs in samples/data (committed; run only to change them)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl

HERE = Path(__file__).parent / "data"
rng = random.Random(42)
start = datetime(2026, 1, 1, tzinfo=UTC)
cities = ["København", "Aarhus", "Odense", "Aalborg", "Esbjerg", "Randers"]

users = pl.DataFrame(
    {
        "user_id": list(range(1, 1001)),
        "name": [f"user {i}" for i in range(1, 1001)],
        "city": [rng.choice(cities) for _ in range(1000)],
        "signed_up": [start + timedelta(minutes=rng.randrange(500_000)) for _ in range(1000)],
        "active": [rng.random() > 0.2 for _ in range(1000)],
    }
)
orders = pl.DataFrame(
    {
        "order_id": list(range(1, 5001)),
        "user_id": [rng.randrange(1, 1001) for _ in range(5000)],
        "amount": [Decimal(rng.randrange(100, 100_000)) / 100 for _ in range(5000)],
        "ordered_at": [
            (start + timedelta(seconds=rng.randrange(30_000_000))).isoformat() for _ in range(5000)
        ],
    }
)
events = pl.DataFrame(
    {
        "event_id": list(range(1, 2001)),
        "user_id": [rng.randrange(1, 1001) for _ in range(2000)],
        "kind": [rng.choice(["view", "click", "buy"]) for _ in range(2000)],
        "at": [
            (start + timedelta(seconds=rng.randrange(30_000_000))).isoformat() for _ in range(2000)
        ],
    }
)

HERE.mkdir(exist_ok=True)
users.write_parquet(HERE / "users.parquet")
orders.write_csv(HERE / "orders.csv")
events.write_ndjson(HERE / "events.ndjson")
