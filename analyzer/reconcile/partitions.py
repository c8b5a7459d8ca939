"""Hash partitions of the gateway and the ledger on disk, so each pass of the reconciliation fits in memory.

Everything reconcile joins or orders is local to one request_id (the join, duplicates, buckets) or
to one account (balances). Above `ROWS_PER_PASS` rows, one streaming pass writes the columns billing
needs to a temporary folder, partitioned by a hash of request_id (`_rp`) and of account_id (`_ap`);
pass i then reads only the files of partition i. Memory is bounded by the rows of one partition,
whatever the size of the inputs, and each input is still read once.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import polars as pl

from analyzer.schema import (
    ACCOUNT_ID,
    COMPLETION_TOKENS,
    KIND,
    LEDGER,
    LEDGER_DEDUCT,
    MODEL,
    PROMPT_TOKENS,
    REQUEST_ID,
    STATUS,
    TS,
)

# Rows of the larger input that one pass holds in its hash tables: 1M reconciles in 0.47 GiB of
# peak, 10M in 1.25 GiB (most of it the partitioned sink's write buffers), for ~5% more CPU than 1M.
ROWS_PER_PASS = 500_000
# Balances are checked per account in fewer, larger partitions: an ordered window over a few million
# entries is lighter than the join, and each open partition costs the sink a write buffer.
ACCOUNT_PARTS_PER_REQUEST_PART = 3
_RP, _AP = "_rp", "_ap"
_GATEWAY_COLUMNS = (TS, REQUEST_ID, ACCOUNT_ID, MODEL, STATUS, PROMPT_TOKENS, COMPLETION_TOKENS)


def _bucket(column: str, count: int) -> pl.Expr:
    # A row without the key joins nothing, so any partition will do: spread by time, or logs with
    # no request_id at all would put every row in one partition.
    key = pl.col(column)
    return pl.when(key.is_not_null()).then(key.hash(seed=7)).otherwise(pl.col(TS).hash(seed=7)) % count


@dataclass
class Partitions:
    """The inputs split `count` ways by request_id and `account_count` ways by account; or not at all."""

    count: int
    account_count: int
    gateway: pl.LazyFrame  # the whole input when count is 1, else an empty frame of its columns
    ledger: pl.LazyFrame
    _folder: tempfile.TemporaryDirectory[str] | None = None

    def requests_of(self, index: int) -> pl.LazyFrame:
        """The gateway lines whose request_id falls in partition `index`."""
        return self._files(self.gateway, f"gateway/{_RP}={index}/*.parquet")

    def entries_by_request(self, index: int) -> pl.LazyFrame:
        """The ledger entries whose request_id falls in partition `index`."""
        return self._files(self.ledger, f"by_request/{_RP}={index}/*.parquet")

    def entries_by_account(self, index: int) -> pl.LazyFrame:
        """The ledger entries whose account_id falls in partition `index` (none past account_count)."""
        if index >= self.account_count:
            return self.ledger.clear()
        return self._files(self.ledger, f"by_account/{_AP}={index}/*.parquet")

    def _files(self, whole: pl.LazyFrame, pattern: str) -> pl.LazyFrame:
        if self._folder is None:
            return whole
        # The partition's own files only: a scan of the whole folder would list and filter them all.
        files = sorted(Path(self._folder.name).glob(pattern))
        if not files:
            return whole.clear()
        return pl.scan_parquet(files, hive_partitioning=False)

    def __enter__(self) -> Partitions:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._folder is not None:
            self._folder.cleanup()


def partition(gateway: pl.LazyFrame, ledger: pl.LazyFrame, rows: int) -> Partitions:
    """Split both inputs into enough hash partitions on disk that each holds about ROWS_PER_PASS rows."""
    count = max(1, -(-rows // ROWS_PER_PASS))
    if count == 1:
        return Partitions(1, 1, gateway, ledger)
    accounts = -(-count // ACCOUNT_PARTS_PER_REQUEST_PART)
    folder = tempfile.TemporaryDirectory(prefix="analyzer-reconcile-")
    base = Path(folder.name)
    gw = gateway.select(*_GATEWAY_COLUMNS).with_columns(_bucket(REQUEST_ID, count).alias(_RP))
    lg = ledger.select(*LEDGER)
    by_request = lg.filter(pl.col(KIND) == LEDGER_DEDUCT).with_columns(_bucket(REQUEST_ID, count).alias(_RP))
    by_account = lg.with_columns(_bucket(ACCOUNT_ID, accounts).alias(_AP))
    # One after the other: each open partition holds a write buffer, and together they add up.
    # The ledger twice, deductions by request and all entries by account: one sink keyed on both
    # would hold a buffer for every pair of partitions.
    for frame, name, key in (
        (gw, "gateway", _RP),
        (by_request, "by_request", _RP),
        (by_account, "by_account", _AP),
    ):
        partitioned = pl.PartitionBy(base / name, key=key, include_key=False)
        # Each pass reads whole files: page statistics and compression would only cost time.
        frame.sink_parquet(partitioned, compression="uncompressed", statistics=False, mkdir=True)
    columns = {"g": gw.drop(_RP).collect_schema(), "l": lg.collect_schema()}
    return Partitions(
        count, accounts, pl.LazyFrame(schema=columns["g"]), pl.LazyFrame(schema=columns["l"]), folder
    )


def split(
    gateway: pl.LazyFrame, ledger: pl.LazyFrame, count: int
) -> list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    """The columns billing needs split `count` ways in memory, as `partition` splits them on disk: each
    part's gateway lines and deductions by the hash of request_id, its ledger entries by the hash of
    account_id (so a part holds whole accounts), each in input order. For passes run elsewhere."""
    lg = ledger.select(*LEDGER)
    frames = pl.collect_all(
        [
            gateway.select(*_GATEWAY_COLUMNS).with_columns(_bucket(REQUEST_ID, count).alias(_RP)),
            lg.filter(pl.col(KIND) == LEDGER_DEDUCT).with_columns(_bucket(REQUEST_ID, count).alias(_RP)),
            lg.with_columns(_bucket(ACCOUNT_ID, count).alias(_AP)),
        ]
    )
    split_ = [_parts(frame, key, count) for frame, key in zip(frames, (_RP, _RP, _AP), strict=True)]
    return list(zip(*split_, strict=True))


def _parts(frame: pl.DataFrame, key: str, count: int) -> list[pl.DataFrame]:
    by = frame.partition_by(key, as_dict=True, include_key=False, maintain_order=True)
    empty = frame.clear().drop(key)
    return [by.get((i,), empty) for i in range(count)]
