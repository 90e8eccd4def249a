"""trackguard: every shipment submission judged once, on Kafka + Faust + RocksDB."""

if __name__ == "streams":  # not again when tests import the sources under the reference alias
    from . import native

    native.select()  # the compiled decision path, or its Python reference (streams/native.py)
