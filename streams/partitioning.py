"""Kafka's default partitioner (murmur2), so every client agrees where a number lives.

Java clients, aiokafka (faust) and confluent-kafka with `partitioner=murmur2_random` all place a
keyed record on `(murmur2(key) & 0x7fffffff) % partitions`; trackguard relies on that to decide a
submission in place when its key already is the normalized number on the right partition.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import i64  # compiled: a C int64, every product below fits (< 2**63); else int

_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as an unsigned 32-bit int."""
    length: i64 = len(data)
    h: i64 = (0x9747B28C ^ length) & _MASK
    end: i64 = length & ~3
    i: i64 = 0
    while i < end:  # little-endian 32-bit words, as Kafka reads them
        k: i64 = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
        i += 4
    extra = length & 3
    if extra == 3:
        h ^= data[end + 2] << 16
    if extra >= 2:
        h ^= data[end + 1] << 8
    if extra >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
