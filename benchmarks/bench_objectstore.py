"""Object storage: hygge vs the same move done directly, against a loopback S3 emulator (moto)
or Azure Blob emulator (Azurite).

    python -m benchmarks.bench_objectstore            # scale factors 1 and 3
    python -m benchmarks.bench_objectstore --scale 1  # quicker
    python -m benchmarks.bench_objectstore --scale 1 --reencode 3  # hygge vs re-encode, median
    python -m benchmarks.bench_objectstore --scale 1 --reencode 3 --cloud az  # on Azurite

Moves (TPC-H lineitem):
- local parquet -> S3 parquet dataset: hygge vs uploading the source file's bytes with
  pyarrow's S3 filesystem (target >= 0.8x), and vs a raw pyarrow re-encode into S3 (target
  >= 0.9x: hygge's commit completes multipart uploads, it copies no bytes);
- S3 parquet -> local parquet: hygge vs a raw pyarrow streaming copy from S3;
- local parquet -> Delta table on S3: hygge vs `write_deltalake` fed the same batches
  (target >= 0.8x).
hygge's peak RSS (wait4: the largest process of its tree) and the CPU seconds of both sides
are printed per scale factor (target: RSS flat from SF1 to SF3), with the load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.common import Measurement, measure, print_table, tpch_lineitem
from tests.objectstore import emulator

BATCH = 100_000


def raw(command: str, *args: str, label: str, rows: int, env: dict[str, str]) -> Measurement:
    return measure(
        label, [sys.executable, "-m", "benchmarks.raw_objectstore", command, *args], rows, env
    )


def hygge(flows: Path, label: str, rows: int, env: dict[str, str]) -> Measurement:
    return measure(label, [sys.executable, "-m", "hygge", "run", str(flows)], rows, env)


def bench_scale(scale: int, work: Path, emu) -> list[tuple[str, Measurement, Measurement]]:
    env = emu.env
    source = tpch_lineitem(scale)
    rows = pq.read_metadata(source).num_rows
    bucket = emu.new_bucket()
    out: list[tuple[str, Measurement, Measurement]] = []

    flows = work / f"to_s3_sf{scale}.yml"
    flows.write_text(
        f"flows:\n  lineitem:\n    home: {{path: {source}, batch_size: {BATCH}}}\n"
        f"    store: {{path: '{bucket}/lake/lineitem', compression: zstd}}\n"
    )
    h = hygge(flows, f"hygge -> S3 SF{scale}", rows, env)
    up = raw(
        "upload",
        str(source),
        f"{bucket}/raw/lineitem.parquet",
        label=f"upload bytes SF{scale}",
        rows=rows,
        env=env,
    )
    re = raw(
        "reencode",
        str(source),
        f"{bucket}/raw/reencoded.parquet",
        str(BATCH),
        label=f"raw re-encode SF{scale}",
        rows=rows,
        env=env,
    )
    out += [
        (f"SF{scale} parquet -> S3 vs upload", up, h),
        (f"SF{scale} parquet -> S3 vs re-encode", re, h),
    ]

    flows = work / f"from_s3_sf{scale}.yml"
    flows.write_text(
        f"flows:\n  lineitem:\n    home: {{path: '{bucket}/raw/lineitem.parquet', "
        f"batch_size: {BATCH}}}\n    store: {{path: {work}/local_sf{scale}, compression: zstd}}\n"
    )
    h = hygge(flows, f"hygge S3 -> local SF{scale}", rows, env)
    r = raw(
        "download",
        f"{bucket}/raw/lineitem.parquet",
        str(work / f"raw_sf{scale}.parquet"),
        str(BATCH),
        label=f"raw S3 -> local SF{scale}",
        rows=rows,
        env=env,
    )
    out.append((f"SF{scale} S3 -> local parquet", r, h))
    shutil.rmtree(work / f"local_sf{scale}", ignore_errors=True)

    flows = work / f"delta_sf{scale}.yml"
    flows.write_text(
        f"flows:\n  lineitem:\n    home: {{path: {source}, batch_size: {BATCH}}}\n"
        f"    store: {{type: delta, path: '{bucket}/delta/hygge'}}\n"
    )
    h = hygge(flows, f"hygge -> Delta SF{scale}", rows, env)
    r = raw(
        "delta",
        str(source),
        f"{bucket}/delta/raw",
        str(BATCH),
        label=f"write_deltalake SF{scale}",
        rows=rows,
        env=env,
    )
    out.append((f"SF{scale} parquet -> Delta on S3", r, h))
    emu.filesystem().delete_dir(bucket.split("://", 1)[1])  # free the emulator's memory
    for name, base, h in out:  # as they come: a long run keeps its figures if cut short
        print(
            f"{name}: baseline {base.seconds:.1f} s ({base.cpu_seconds:.1f} CPU s), hygge "
            f"{h.seconds:.1f} s ({h.cpu_seconds:.1f} CPU s) = {base.seconds / h.seconds:.2f}x, "
            f"hygge peak RSS {h.peak_rss_mb:.0f} MB, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return out


def bench_reencode(scale: int, work: Path, emu, repeat: int) -> None:
    """parquet -> S3 (or Azure) dataset vs the raw re-encode alone, alternating which runs
    first, `repeat` pairs: the median of the pairs' ratios (the target: >= 0.9x)."""
    source = tpch_lineitem(scale)
    rows = pq.read_metadata(source).num_rows
    pairs: list[tuple[Measurement, Measurement]] = []
    for i in range(repeat):
        bucket = emu.new_bucket()
        flows = work / f"reencode_{i}.yml"
        flows.write_text(
            f"flows:\n  lineitem:\n    home: {{path: {source}, batch_size: {BATCH}}}\n"
            f"    store: {{path: '{bucket}/lake/lineitem', compression: zstd}}\n"
        )
        args = (str(source), f"{bucket}/raw/reencoded.parquet", str(BATCH))
        if i % 2:
            h = hygge(flows, "hygge", rows, emu.env)
        base = raw("reencode", *args, label="raw re-encode", rows=rows, env=emu.env)
        if not i % 2:
            h = hygge(flows, "hygge", rows, emu.env)
        pairs.append((base, h))
        print(
            f"SF{scale} pair {i + 1}: re-encode {base.seconds:.1f} s "
            f"({base.cpu_seconds:.1f} CPU s, {base.peak_rss_mb:.0f} MB), hygge {h.seconds:.1f} s "
            f"({h.cpu_seconds:.1f} CPU s, {h.peak_rss_mb:.0f} MB): "
            f"{base.seconds / h.seconds:.2f}x, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        emu.filesystem().delete_dir(bucket.split("://", 1)[1])
    wall = statistics.median(b.seconds / h.seconds for b, h in pairs)
    cpu = statistics.median(b.cpu_seconds / h.cpu_seconds for b, h in pairs)
    print(
        f"SF{scale} parquet -> {emu.scheme} dataset vs raw re-encode: median {wall:.2f}x of "
        f"{repeat} "
        f"pairs (target >= 0.9x); CPU seconds {cpu:.2f}x",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, action="append", help="TPC-H scale factor(s)")
    parser.add_argument(
        "--reencode",
        type=int,
        metavar="PAIRS",
        help="only hygge -> S3 vs the raw re-encode, this many alternating pairs (median)",
    )
    parser.add_argument(
        "--cloud", choices=["s3", "az"], default="s3", help="moto (s3) or Azurite (az)"
    )
    args = parser.parse_args()
    emu = emulator(args.cloud)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="hygge-bench-os-") as tmp:
            for scale in args.scale or [1, 3]:
                if args.reencode:
                    bench_reencode(scale, Path(tmp), emu, args.reencode)
                else:
                    results += bench_scale(scale, Path(tmp), emu)
    finally:
        emu.stop()
    if not results:
        return
    print_table(
        "object storage (moto on loopback)",
        [
            (
                name,
                f"{base.seconds:.1f}",
                f"{base.peak_rss_mb:.0f}",
                f"{h.seconds:.1f}",
                f"{h.rows_per_second:,.0f}",
                f"{h.peak_rss_mb:.0f}",
                f"{base.cpu_seconds:.1f}",
                f"{h.cpu_seconds:.1f}",
                f"{base.seconds / h.seconds:.2f}x",
            )
            for name, base, h in results
        ],
        (
            "move",
            "baseline s",
            "baseline RSS MB",
            "hygge s",
            "hygge rows/s",
            "hygge RSS MB",
            "baseline CPU s",
            "hygge CPU s",
            "hygge/baseline",
        ),
    )


if __name__ == "__main__":
    main()
