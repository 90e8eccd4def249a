"""The store seam: RocksDB is reached through streams/store.py only, and it works on a real table.

The last test builds a real Faust `rocksdb://` table (no broker: the store is opened for a
partition directly) and goes through every method of the seam.
"""

from __future__ import annotations

import re
from pathlib import Path

import faust

from streams.store import PartitionStore

PACKAGE = Path(__file__).resolve().parent.parent / "streams"
# What only streams/store.py may touch: Faust's store internals and RocksDB itself.
PRIVATE = re.compile(r"_db_for_partition|set_persisted_offset\(TP|(from|import) rocksdict|WriteBatch\(|\.table\.data\b")


def test_no_module_but_the_store_reaches_rocksdb_or_faust_store_internals():
    for code in ("db = x._db_for_partition(1)", "from rocksdict import Rdict", "b = WriteBatch(raw_mode=True)"):
        assert PRIVATE.search(code), code  # the rule itself catches what it is for
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "store.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert offenders == [], "go through streams.store.PartitionStore:\n" + "\n".join(offenders)


def test_read_write_scan_restore_and_persisted_offsets_on_a_real_rocksdb_table(tmp_path):
    app = faust.App(
        "store-seam",
        broker="kafka://127.0.0.1:1",
        store="rocksdb://",
        datadir=str(tmp_path),
        key_serializer="raw",
        value_serializer="raw",
    )
    table = app.Table("numbers", partitions=2, key_type=bytes, value_type=bytes)
    store = PartitionStore(table)
    assert store.changelog_topic == "store-seam-numbers-changelog"
    store.write(1, {b"B": b"2", b"A": b"1", b"C": b"3"})
    assert (store.read(1, b"A"), store.read(1, b"Z"), store.read(0, b"A")) == (b"1", None, None)
    store.apply_changelog(1, [(b"C", None), (b"D", b"4"), (b"A", b"one")])
    store.set_persisted_offset(1, 41)
    assert list(store.scan(1)) == [(b"A", b"one"), (b"B", b"2"), (b"D", b"4")]  # Faust's offset key left out
    assert list(store.scan(1, after=b"B")) == [(b"B", b"2"), (b"D", b"4")]
    from faust.types import TP

    assert table.data.persisted_offset(TP(store.changelog_topic, 1)) == 41


def test_the_used_index_lists_one_licences_numbers_in_order_and_stays_out_of_scans(tmp_path):
    from streams.core.state import INDEX_VALUE, reuse_index_key, used_index_key

    app = faust.App("store-index", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=str(tmp_path))
    store = PartitionStore(app.Table("numbers", partitions=1, key_type=bytes, value_type=bytes))
    numbers = {b"RB2", b"RA1", b"RC3"}
    store.write(0, {n: b"{}" for n in numbers} | {used_index_key("L1", n): INDEX_VALUE for n in numbers})
    # Another licence whose id L1 is a prefix of, and one that sorts right after it: not L1's.
    store.write(0, {used_index_key("L10", b"RZ9"): INDEX_VALUE, used_index_key("L2", b"RA0"): INDEX_VALUE})
    assert list(store.used_numbers(0, "L1")) == [b"RA1", b"RB2", b"RC3"]
    assert list(store.used_numbers(0, "L1", after=b"RA1")) == [b"RB2", b"RC3"]
    assert list(store.used_numbers(0, "L1", after=b"RB")) == [b"RB2", b"RC3"]  # `after` need not be a number
    assert list(store.used_numbers(0, "L10")) == [b"RZ9"]
    assert list(store.used_numbers(0, "L3")) == []
    assert [k for k, _ in store.scan(0)] == [b"RA1", b"RB2", b"RC3"]  # the index is not a number
    # The reuse index beside them: its own prefix, not confused with a licence called "reuse".
    store.write(0, {reuse_index_key(b"RB2"): INDEX_VALUE, used_index_key("reuse", b"RQ7"): INDEX_VALUE})
    assert list(store.reused_numbers(0)) == [b"RB2"]
    assert list(store.used_numbers(0, "reuse")) == [b"RQ7"]
    assert [k for k, _ in store.scan(0)] == [b"RA1", b"RB2", b"RC3"]
