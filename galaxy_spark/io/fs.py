"""Where the jobs' outputs live: one small set of file operations over a local path or a
Hadoop-compatible URI (``file://``, ``hdfs://``, ``s3a://``, ``abfs://``, …).

The commit protocol, manifests, ledger and lock (`galaxy_spark.io`) ask `store(location)` for the
operations they need and never call `os` on a location themselves:

- a plain path (``data/scores``, a `pathlib.Path`) → `LocalStore`: Python's `os`, with the fsyncs,
  ``O_EXCL`` and ``flock`` the protocol relied on before URIs were accepted;
- a URI (or any location when a Spark session is passed) → `HadoopStore`: the Spark session's JVM
  ``org.apache.hadoop.fs.FileSystem`` for that URI, configured by the session's Hadoop
  configuration (``spark.hadoop.*``: credentials, endpoints). So a path means the same to the
  commit as to Spark's own reader and writer.

Executors cannot reach the JVM from a Python task (no py4j there): `io.arrow.arrow_fs` gives them
`pyarrow.fs` for the same URI (``s3a://`` and ``s3n://`` become pyarrow's ``s3://``).

A location is a `pathlib.Path` (local) or a `UriPath` (the few Path operations the protocol uses,
on a URI); `location()` makes one from a str. What each store makes atomic is in docs/storage.md.
"""
from __future__ import annotations

import fcntl
import fnmatch
import os
import posixpath
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from galaxy_spark.errors import GalaxySparkError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")    # two letters at least: C:\ is a path
GUARD_STALE_S = 60.0     # a Hadoop guard file older than this was left by a crashed lock breaker


class StorageError(GalaxySparkError, OSError):
    """A file operation failed in a store (the message names the operation, the path and why).
    An OSError too, so the protocol's recovery handlers treat every store alike."""


def is_uri(p) -> bool:
    """True for ``scheme:…`` strings (``file:``, ``hdfs:``, ``s3a:``…), False for plain paths."""
    return isinstance(p, UriPath) or (not isinstance(p, os.PathLike) and bool(_SCHEME.match(str(p))))


class UriPath:
    """A location in a Hadoop-compatible store, ``scheme://authority/path``, with the Path
    operations the protocol uses (``/``, name, parent, parents, with_name). Deliberately not
    os.PathLike: Python's `os` must never be handed one."""

    def __init__(self, uri: str):
        u = urlsplit(str(uri))
        self.scheme, self.netloc = u.scheme.lower(), u.netloc
        self.path = "/" + posixpath.normpath(u.path or "/").lstrip("/")
        if self.path == "/.":
            self.path = "/"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}"

    def __repr__(self) -> str:
        return f"UriPath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, UriPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __truediv__(self, name: str) -> UriPath:
        return UriPath(f"{self.scheme}://{self.netloc}{posixpath.join(self.path, str(name))}")

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent(self) -> UriPath:
        return UriPath(f"{self.scheme}://{self.netloc}{posixpath.dirname(self.path)}")

    @property
    def parents(self) -> list[UriPath]:
        out, p = [], self
        while p.path != "/":
            p = p.parent
            out.append(p)
        return out

    def with_name(self, name: str) -> UriPath:
        return self.parent / name

    def absolute(self) -> UriPath:
        return self


def location(p) -> Path | UriPath:
    """`p` (str, Path or UriPath) as a Path (plain path) or a UriPath (URI)."""
    if isinstance(p, (Path, UriPath)):
        return p
    return UriPath(str(p)) if is_uri(p) else Path(p)


def _message(e: BaseException) -> str:
    """The first line of a (Java) exception, without py4j's preamble."""
    j = getattr(e, "java_exception", None)
    text = str(j.toString() if j is not None else e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# =============================================================================================
# local: Python's os
# =============================================================================================
def fsync_dir(d) -> None:
    """Make a rename or file creation in `d` durable (best effort: not every file system can)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalStore:
    """The operations on a local (or NFS) path, through `os`."""

    def exists(self, p) -> bool:
        return os.path.exists(p)

    def is_dir(self, p) -> bool:
        return os.path.isdir(p)

    def is_file(self, p) -> bool:
        return os.path.isfile(p)

    def list(self, p) -> list[Path]:
        try:
            return [Path(p) / n for n in sorted(os.listdir(p))]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def mkdirs(self, p) -> None:
        os.makedirs(p, exist_ok=True)

    def mkdir_new(self, p) -> None:
        """Create `p`, which must not exist yet (its parent must)."""
        os.mkdir(p)

    def rename(self, src, dst) -> None:
        os.rename(src, dst)

    def delete(self, p) -> None:
        """Remove a file or a whole directory; nothing when it is gone already."""
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            Path(p).unlink(missing_ok=True)

    def read_bytes(self, p) -> bytes:
        return Path(p).read_bytes()

    def write_bytes(self, p, data: bytes) -> None:
        Path(p).write_bytes(data)

    def write_atomic(self, p, data: bytes) -> None:
        """Readers see the old content or the new, never part: a temporary sibling, fsync, rename."""
        p = Path(p)
        tmp = p.with_name(f"{p.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        fsync_dir(p.parent)

    def create_exclusive(self, p, data: bytes) -> bool:
        """Create `p` holding `data` unless it exists (``O_CREAT|O_EXCL``); False when it did."""
        try:
            fd = os.open(str(p), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(Path(p).parent)
        return True

    def append(self, p, data: bytes) -> None:
        """Append `data` with one write on an ``O_APPEND`` descriptor, then fsync (the directory
        too on creation)."""
        new = not os.path.exists(p)
        fd = os.open(str(p), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(Path(p).parent)

    def mtime(self, p) -> float:
        return os.stat(p).st_mtime

    @contextmanager
    def guard(self, p) -> Iterator[bool]:
        """Exclusive section across processes on this host: an flock on `p`. Always yields True."""
        fd = os.open(str(p), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            os.close(fd)


# =============================================================================================
# Hadoop: the Spark session's JVM FileSystem
# =============================================================================================
class HadoopStore:
    """The same operations through ``org.apache.hadoop.fs.FileSystem`` (py4j, driver only).
    Every JVM failure is a `StorageError` naming the operation and the path."""

    def __init__(self, spark, uri: str):
        self._jvm = spark._jvm
        self._gateway = spark.sparkContext._gateway
        self._conf = spark._jsc.hadoopConfiguration()
        self._fs = self._call("open the file system of", uri, lambda: self._p(uri).getFileSystem(self._conf))

    def _p(self, p):
        return self._jvm.org.apache.hadoop.fs.Path(str(p))

    def _call(self, what: str, p, fn):
        from py4j.protocol import Py4JJavaError

        try:
            return fn()
        except Py4JJavaError as e:
            msg = _message(e)
            cls = FileNotFoundError if "FileNotFoundException" in msg else StorageError
            if cls is FileNotFoundError:
                raise FileNotFoundError(f"cannot {what} {p}: {msg}") from None
            raise StorageError(f"cannot {what} {p}: {msg}") from None

    def _status(self, p):
        try:
            return self._call("read the status of", p, lambda: self._fs.getFileStatus(self._p(p)))
        except FileNotFoundError:
            return None

    def exists(self, p) -> bool:
        return self._status(p) is not None

    def is_dir(self, p) -> bool:
        st = self._status(p)
        return st is not None and st.isDirectory()

    def is_file(self, p) -> bool:
        st = self._status(p)
        return st is not None and st.isFile()

    def list(self, p) -> list[UriPath]:
        p = location(p)
        try:
            sts = self._call("list", p, lambda: self._fs.listStatus(self._p(p)))
        except FileNotFoundError:
            return []
        return sorted((p / st.getPath().getName() for st in sts), key=str)

    def mkdirs(self, p) -> None:
        if not self._call("create the directory", p, lambda: self._fs.mkdirs(self._p(p))):
            raise StorageError(f"cannot create the directory {p}")

    def mkdir_new(self, p) -> None:
        if self.exists(p):
            raise FileExistsError(f"{p} exists already")
        self.mkdirs(p)

    def rename(self, src, dst) -> None:
        # FileSystem.rename moves src *into* an existing directory dst: refuse instead, as os does
        if self.exists(dst):
            raise FileExistsError(f"cannot rename {src} to {dst}: the target exists")
        if not self._call(f"rename to {dst}:", src, lambda: self._fs.rename(self._p(src), self._p(dst))):
            raise StorageError(f"cannot rename {src} to {dst} (the file system refused)")

    def delete(self, p) -> None:
        self._call("delete", p, lambda: self._fs.delete(self._p(p), True))

    def read_bytes(self, p) -> bytes:
        def read():
            stream = self._fs.open(self._p(p))
            try:
                return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
            finally:
                stream.close()
        return self._call("read", p, read)

    def _write(self, p, data: bytes, overwrite: bool) -> None:
        def write():
            out = self._fs.create(self._p(p), overwrite)
            try:
                out.write(bytearray(data))
                out.hsync()          # durable before it is renamed or relied on
            finally:
                out.close()
        self._call("write", p, write)

    def write_bytes(self, p, data: bytes) -> None:
        self._write(p, data, True)

    def write_atomic(self, p, data: bytes) -> None:
        """A temporary sibling, then a rename over `p` (FileContext's rename with OVERWRITE: one
        atomic NameNode operation on HDFS; copy+delete of one object on S3A, whose readers still
        see the old object or the new one)."""
        p = location(p)
        tmp = p.with_name(f"{p.name}.tmp-{os.getpid()}")
        self._write(tmp, data, True)
        R = self._jvm.org.apache.hadoop.fs.Options.Rename
        opts = self._gateway.new_array(R, 1)
        opts[0] = R.OVERWRITE

        def rename_over():
            fc = self._jvm.org.apache.hadoop.fs.FileContext.getFileContext(self._p(p).toUri(), self._conf)
            fc.rename(self._p(tmp), self._p(p), opts)
        self._call(f"replace {p} by", tmp, rename_over)

    def create_exclusive(self, p, data: bytes) -> bool:
        """``create(overwrite=false)``: atomic on HDFS; a check-then-create elsewhere (docs/storage.md)."""
        try:
            self._write(p, data, False)
        except StorageError as e:
            if self.exists(p) and "AlreadyExists" in str(e):
                return False
            raise
        return True

    def append(self, p, data: bytes) -> None:
        """The whole file rewritten with `data` added (`write_atomic`): S3 and Hadoop's local file
        system cannot append. Callers append under a lock (the ledger: the run lock)."""
        old = self.read_bytes(p) if self.exists(p) else b""
        self.write_atomic(p, old + data)

    def mtime(self, p) -> float:
        st = self._status(p)
        if st is None:
            raise FileNotFoundError(f"{p} does not exist")
        return st.getModificationTime() / 1000.0

    @contextmanager
    def guard(self, p) -> Iterator[bool]:
        """Exclusive section: the guard file `p` created with `create_exclusive`; yields False when
        another process holds it. A guard older than `GUARD_STALE_S` (its holder crashed) is removed."""
        got = self.create_exclusive(p, str(os.getpid()).encode())
        if not got and self.exists(p) and time.time() - self.mtime(p) > GUARD_STALE_S:
            self.delete(p)
            got = self.create_exclusive(p, str(os.getpid()).encode())
        try:
            yield got
        finally:
            if got:
                self.delete(p)


_LOCAL = LocalStore()


def store(p, spark=None) -> LocalStore | HadoopStore:
    """The store of location `p`: `LocalStore` for a plain path unless `spark` is given, else the
    `HadoopStore` of the session `spark` (default: the active one, started when there is none)."""
    if spark is None and not is_uri(p):
        return _LOCAL
    if spark is None:
        spark = _session()
    uri = str(p) if is_uri(p) else Path(os.path.abspath(p)).as_uri()
    return HadoopStore(spark, uri)


def _session():
    """The active Spark session, or a new one: a URI needs the JVM. A job that takes ``--master``
    starts its session before its first path check (`start_spark_for`)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    from galaxy_spark.spark import get_spark

    return get_spark()


def start_spark_for(paths, app: str, master: str | None = None) -> float:
    """Start the job's session (with its ``--master``) before its first path check when any of
    `paths` is a URI: those checks go through the JVM. Returns the seconds it took (0: not needed)."""
    if not any(p is not None and is_uri(p) for p in paths):
        return 0.0
    from galaxy_spark.spark import get_spark

    t0 = time.perf_counter()
    get_spark(app, master=master)
    return time.perf_counter() - t0


def glob(s, parent, pattern: str) -> list:
    """The children of `parent` whose names match `pattern` (fnmatch), sorted."""
    return [c for c in s.list(parent) if fnmatch.fnmatchcase(c.name, pattern)]
