"""The executors' side of the store (galaxy_spark.io.fs): Python tasks cannot reach the JVM (no
py4j there), so they read and write a location through `pyarrow.fs` — a plain path the local file
system, a URI pyarrow's own client for it (``s3a://`` and ``s3n://`` become ``s3://``); and the
Parquet helpers built on it (atomic file writes, footer row counts).
"""
from __future__ import annotations

import os
import posixpath

from galaxy_spark.io.fs import StorageError, UriPath, is_uri

_ARROW_SCHEMES = {"s3a": "s3", "s3n": "s3"}


def arrow_uri(p) -> str:
    """The URI pyarrow is given for location `p`: ``s3a://``/``s3n://`` read as ``s3://``."""
    u = UriPath(str(p))
    return f"{_ARROW_SCHEMES.get(u.scheme, u.scheme)}://{u.netloc}{u.path}"


def arrow_fs(p):
    """(pyarrow FileSystem, path in it) for location `p`, for Python code that cannot reach the
    JVM (Spark's executors). A plain path is the local file system; ``s3a://`` is pyarrow's
    ``s3://`` (its own S3 client: credentials from the environment or instance profile, not
    from ``spark.hadoop.fs.s3a.*``); ``hdfs://`` needs libhdfs (``ARROW_LIBHDFS_DIR``, a Hadoop
    ``CLASSPATH``) on every executor."""
    import pyarrow.fs as pafs

    if not is_uri(p):
        return pafs.LocalFileSystem(), os.path.abspath(p)
    uri = arrow_uri(p)
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ImportError…
        raise StorageError(f"pyarrow cannot open {p} (as {uri}): {e}") from None


def arrow_data_files(directory) -> tuple[object, str, list]:
    """(pyarrow FileSystem, `directory`'s path in it, FileInfos of the data files under it,
    recursively, sorted by path): names starting with ``_`` or ``.`` anywhere below it are not data (Spark's and
    pyarrow's rule). A missing directory has none."""
    import pyarrow.fs as pafs

    fs, root = arrow_fs(directory)
    info = fs.get_file_info(root)
    if info.type != pafs.FileType.Directory:
        return fs, root, []
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    out = [i for i in found if i.type == pafs.FileType.File and not any(
        part.startswith(("_", ".")) for part in posixpath.relpath(i.path, root).split("/"))]
    return fs, root, sorted(out, key=lambda i: i.path)


def arrow_move_over(fs, src: str, dst: str) -> None:
    """Rename `src` to `dst`, replacing it. Locally and on S3 `move` replaces; HDFS refuses an
    existing target (left by an earlier attempt of the same unit, complete too): delete it first."""
    import pyarrow.fs as pafs

    try:
        fs.move(src, dst)
    except OSError:
        if fs.get_file_info(dst).type == pafs.FileType.NotFound:
            raise
        fs.delete_file(dst)
        fs.move(src, dst)


def write_parquet_atomically(table, dest, **options) -> None:
    """Write `table` to `dest` (a plain path or a URI, through pyarrow.fs) as ``.tmp-…`` and rename
    it, so the file appears under its name only when complete."""
    import pyarrow.parquet as pq

    fs, path = arrow_fs(dest)
    parent = posixpath.dirname(path)
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.tmp-{posixpath.basename(path)}-{os.getpid()}"
    pq.write_table(table, tmp, filesystem=fs, compression="snappy", **options)
    arrow_move_over(fs, tmp, path)


def parquet_rows(directory) -> int:
    """Rows in the Parquet data files under `directory` (footers only; plain path or URI)."""
    import pyarrow.parquet as pq

    fs, _, infos = arrow_data_files(directory)
    return sum(pq.ParquetFile(fs.open_input_file(i.path)).metadata.num_rows
               for i in infos if i.path.endswith(".parquet"))
