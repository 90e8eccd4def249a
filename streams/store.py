"""The store seam: the one place that reaches the RocksDB partitions behind a Faust table (the
numbers table; the stores table's marks).

Faust's `rocksdb://` store (rocksdict driver) keeps one RocksDB per table partition. trackguard
reads and writes them directly, in batches, below the table's per-key API: the hot path (read,
write batch, persisted offsets), the changelog restore (apply a fetch of changelog records) and
the web views (read, scan a partition). Everything else goes through `PartitionStore`; the
Faust internals it relies on (`Store._db_for_partition`, `Store.set_persisted_offset`,
`Table.changelog_topic`) are pinned in tests/test_hotpath_pins.py, and a test keeps them out of
every other module (tests/test_store.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from rocksdict import WriteBatch

from .core.state import INDEX_MARK, REUSE_INDEX_PREFIX, used_index_prefix

FAUST_META_PREFIX = b"__faust"  # Faust's own keys in each partition's RocksDB (persisted offsets)


class PartitionStore:
    """Raw access to the RocksDB partitions of one Faust `rocksdb://` table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    @property
    def changelog_topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()

    def _db(self, partition: int) -> Any:
        return self.table.data._db_for_partition(partition)

    def read(self, partition: int, key: bytes) -> bytes | None:
        return self._db(partition).get(key)

    def write(self, partition: int, items: Mapping[bytes, bytes]) -> None:
        """Many keys in one WriteBatch: atomic on disk, one call into RocksDB."""
        batch = WriteBatch(raw_mode=True)
        for key, value in items.items():
            batch.put(key, value)
        self._db(partition).write(batch)

    def apply_changelog(self, partition: int, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        """A fetch of changelog records (a None value deletes), in one WriteBatch."""
        batch = WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db(partition).write(batch)

    def scan(self, partition: int, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """The partition's (number, state) pairs in key order, from `after` on, without Faust's
        own keys and the index."""
        for key, value in self._db(partition).items(from_key=after):
            if isinstance(key, bytes) and not key.startswith((FAUST_META_PREFIX, INDEX_MARK)):
                yield key, value

    def used_numbers(self, partition: int, license_id: str, after: bytes = b"") -> Iterator[bytes]:
        """The numbers bound to the licence in this partition, in order, past `after`: from the
        licence's index, so the cost is the licence's numbers, not the partition's."""
        return self._indexed(partition, used_index_prefix(license_id), after)

    def reused_numbers(self, partition: int, after: bytes = b"") -> Iterator[bytes]:
        """The numbers of this partition claimed by more than one licence, in order, past `after`."""
        return self._indexed(partition, REUSE_INDEX_PREFIX, after)

    def keys_from(self, partition: int, prefix: bytes) -> Iterator[bytes]:
        """Every key of the partition that starts with `prefix`, in key order (one range read)."""
        for key in self._indexed(partition, prefix, b""):
            yield prefix + key

    def _indexed(self, partition: int, prefix: bytes, after: bytes) -> Iterator[bytes]:
        start = prefix + after + b"\x00" if after else prefix  # just past `after` itself
        for key in self._db(partition).keys(from_key=start):
            if not isinstance(key, bytes) or not key.startswith(prefix):
                return
            yield key[len(prefix) :]

    def set_persisted_offset(self, partition: int, offset: int) -> None:
        """The changelog offset this partition's RocksDB holds everything up to (recovery resumes after it)."""
        from faust.types import TP

        self.table.data.set_persisted_offset(TP(self.changelog_topic, partition), offset)
