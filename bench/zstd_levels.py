#!/usr/bin/env python3
"""zstd CPU time and output size, frame by frame as a backup compresses.

Compresses RDB files in 4 MiB frames (replvault's frame size, each frame
on its own) with the zstd library replvault links (1.5.7, through the
`zstandard` package from PyPI), for each parameter set given, and prints
CPU seconds and size against the first set. Rounds alternate in order and
the median is reported, since CPU time on a shared VM drifts.

    python3 -m pip install zstandard
    python3 bench/zstd_levels.py a.rdb b.rdb -- "level=3,min_match=7" "level=2,min_match=7"

A parameter set is `level=N` plus any zstandard.ZstdCompressionParameters
field (min_match, hash_log, chain_log, window_log, ...).
"""
import statistics
import sys
import time

import zstandard as zs

FRAME = 4 << 20
ROUNDS = 3


def compressor(spec):
    cfg = {k: int(v) for k, v in (kv.split("=") for kv in spec.split(","))}
    base = zs.ZstdCompressionParameters.from_level(cfg.pop("level", 3), source_size=FRAME)
    kw = dict(window_log=base.window_log, chain_log=base.chain_log, hash_log=base.hash_log,
              search_log=base.search_log, min_match=base.min_match,
              target_length=base.target_length, strategy=base.strategy,
              write_content_size=True)
    kw.update(cfg)
    return zs.ZstdCompressor(compression_params=zs.ZstdCompressionParameters(**kw))


def main():
    if "--" not in sys.argv:
        sys.exit(__doc__)
    split = sys.argv.index("--")
    files, specs = sys.argv[1:split], sys.argv[split + 1:]
    for path in files:
        data = open(path, "rb").read()
        frames = [data[i:i + FRAME] for i in range(0, len(data), FRAME)]
        cpu = {s: [] for s in specs}
        size = {}
        for rnd in range(ROUNDS):
            for spec in (specs if rnd % 2 == 0 else specs[::-1]):
                z = compressor(spec)
                t = time.process_time()
                size[spec] = sum(len(z.compress(f)) for f in frames)
                cpu[spec].append(time.process_time() - t)
        base = specs[0]
        for spec in specs:
            t = statistics.median(cpu[spec])
            print(f"{path}  {spec:40} cpu {t:6.3f} s ({t / statistics.median(cpu[base]):.2f}x)"
                  f"  {len(data) / t / 1e6:5.0f} MB/s  size {size[spec] / size[base]:.3f}x"
                  f" ({len(data) / size[spec]:.2f}:1)", flush=True)


if __name__ == "__main__":
    main()
