"""A test helper: gzip files that decompress to far more than they hold."""

import zlib


def write_gzip_bomb(path, size, prefix=b""):
    """Write a gzip of ``prefix`` and ``size`` zero bytes, streaming: never holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31, 9, zlib.Z_RLE)
    block = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(compressor.compress(prefix))
        for _ in range(size // len(block)):
            f.write(compressor.compress(block))
        f.write(compressor.flush())
    return path
