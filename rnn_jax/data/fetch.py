"""Fetches a real dataset into the data directory, checked against its SHA-256.

  python -m rnn_jax.data.fetch tiny_shakespeare                     # download
  python -m rnn_jax.data.fetch tiny_shakespeare --from=input.txt    # offline: a copy downloaded elsewhere
  python -m rnn_jax.data.fetch uji_pen_digits --data_dir=/data      # another data directory
  python -m rnn_jax.data.fetch fsdd --from=recordings/               # a folder: a copy of an archive's folder

The data directory is `--data_dir`, else $RNN_JAX_DATA, else ~/rnn_jax_data; a dataset's file is
stored as `<data directory>/<name>/<filename>` (names, sources and licences: `datasets.DATASETS`), a folder
for datasets that are a folder of an archive (`Dataset.extract`).
Configs name a fetched file `fetched:<name>` (`--config.data.path=fetched:tiny_shakespeare`);
`resolve` turns that into the file's path, or fails in one line naming the command that fetches it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request

from rnn_jax.data.datasets import DATASETS, Dataset

ENV_VAR = "RNN_JAX_DATA"
PREFIX = "fetched:"
_DEFAULT_ROOT = os.path.join("~", "rnn_jax_data")
_CHUNK_BYTES = 1 << 20
_TIMEOUT_S = 60


class MissingDataError(FileNotFoundError):
  """Data a run needs is absent; the message names the command that provides it."""


class FetchError(RuntimeError):
  """A download or copy failed or did not match its checksum; nothing was stored."""


def data_root(override: str = "") -> str:
  """The data directory: `override`, else $RNN_JAX_DATA, else ~/rnn_jax_data (absolute)."""
  return os.path.abspath(os.path.expanduser(override or os.environ.get(ENV_VAR) or _DEFAULT_ROOT))


def dataset(name: str) -> Dataset:
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; fetchable: {', '.join(DATASETS)}")
  return DATASETS[name]


def local_path(name: str, root: str = "") -> str:
  """Where `name`'s file is stored: `<data directory>/<name>/<filename>`."""
  return os.path.join(data_root(root), name, dataset(name).filename)


def missing_message(name: str) -> str:
  """The one line that says `name` is absent and which command fetches it."""
  return f"{name} is not in {data_root()}: run python -m rnn_jax.data.fetch {name} (or --from=PATH offline)"


def resolve(path: str) -> str:
  """The file `fetched:<name>` stands for (MissingDataError when not fetched); any other path unchanged."""
  if not path.startswith(PREFIX):
    return path
  name = path[len(PREFIX):]
  target = local_path(name)
  if not os.path.exists(target):
    raise MissingDataError(missing_message(name))
  return target


def sha256_of(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def _copy_hashing(source, out) -> str:
  """Copies the binary stream `source` into `out`; returns the SHA-256 of what was copied."""
  digest = hashlib.sha256()
  for chunk in iter(lambda: source.read(_CHUNK_BYTES), b""):
    digest.update(chunk)
    out.write(chunk)
  return digest.hexdigest()


def _open(location: str):
  """A binary stream of a local file, or of a URL's download."""
  if "://" in location:
    return urllib.request.urlopen(location, timeout=_TIMEOUT_S)  # pylint: disable=consider-using-with
  return open(location, "rb")  # pylint: disable=consider-using-with


def fetch(name: str, source: str = "", root: str = "") -> str:
  """Stores `name`'s file, downloaded from its URL or copied from `source`, once its SHA-256 matches.

  Writes a temporary file next to the destination and renames it into place, so a failure (FetchError)
  leaves the data directory as it was. Returns the stored file's path.
  """
  data = dataset(name)
  target = local_path(name, root)
  if data.extract:
    return _fetch_folder(data, source, target)
  if os.path.exists(target):
    if sha256_of(target) == data.sha256:
      return target
    raise FetchError(f"{target} exists but its sha256 is not {name}'s: move it away to fetch {name} again")
  location = source or data.url
  with _stored_as(target, data.filename, folder=False) as temp:
    try:
      with open(temp, "wb") as out, _open(location) as stream:
        digest = _copy_hashing(stream, out)
    except (OSError, http.client.HTTPException) as e:
      offline = "" if source else "; offline, pass a copy downloaded elsewhere with --from=PATH"
      raise FetchError(f"could not read {location} ({e}){offline}") from None
    if digest != data.sha256:
      raise FetchError(f"{location} has sha256 {digest}, expected {data.sha256}: nothing stored")
  return target


@contextlib.contextmanager
def _stored_as(target: str, name: str, folder: bool):
  """Yields a private temporary file (or folder) beside `target`, renamed to `target` when the block ends and
  removed, with a directory made for it, when the block raises: a failure leaves the data directory as it was."""
  directory = os.path.dirname(target)
  made_directory = not os.path.isdir(directory)
  os.makedirs(directory, exist_ok=True)
  if folder:
    temp = tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=directory)
  else:
    handle, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    os.close(handle)
  try:
    yield temp
    os.chmod(temp, 0o755 if folder else 0o644)  # as an unpacked folder or a downloaded file (temp was private)
    os.replace(temp, target)
  except BaseException:
    if folder:
      shutil.rmtree(temp)
    else:
      os.remove(temp)
    if made_directory:
      os.rmdir(directory)
    raise


def contents_sha256(folder: str) -> str:
  """What `sha256sum * | sha256sum` prints in `folder` (its files in C-locale name order), without the " -"."""
  lines = "".join(f"{sha256_of(os.path.join(folder, n))}  {n}\n" for n in sorted(_files(folder)))
  return hashlib.sha256(lines.encode()).hexdigest()


def _files(folder: str) -> list[str]:
  """The files `*` names in `folder` (hidden ones left out, as the shell does)."""
  return [n for n in os.listdir(folder) if not n.startswith(".") and os.path.isfile(os.path.join(folder, n))]


def _fetch_folder(data: Dataset, source: str, target: str) -> str:
  """Stores the archive folder `data.extract` as `target`: unpacked from the checked archive (downloaded, or
  `source`), or copied from `source`, a local copy of the folder (or of the folder above it) whose files
  match `data.contents_sha256`. A failure (FetchError) leaves the data directory as it was."""
  if os.path.isdir(target):
    return target
  with _stored_as(target, data.filename, folder=True) as temp:
    if source and os.path.isdir(source):
      _copy_folder(data, source, temp)
    else:
      _unpack_archive(data, source, temp)
  return target


def _copy_folder(data: Dataset, source: str, out: str) -> None:
  inner = os.path.join(source, os.path.basename(data.extract))
  folder = inner if os.path.isdir(inner) else source
  for name in _files(folder):
    shutil.copyfile(os.path.join(folder, name), os.path.join(out, name))
  digest = contents_sha256(out)
  if digest != data.contents_sha256:
    raise FetchError(f"the files of {folder} have contents sha256 {digest}, expected {data.contents_sha256} "
                     f"(`sha256sum * | sha256sum` there): not a copy of {data.url}'s {data.extract}; nothing stored")


def _unpack_archive(data: Dataset, source: str, out: str) -> None:
  """Downloads (or copies `source`) the tar archive into `out`, checks it, unpacks `data.extract`'s files."""
  location = source or data.url
  archive = os.path.join(out, ".archive")
  try:
    with open(archive, "wb") as stream_out, _open(location) as stream:
      digest = _copy_hashing(stream, stream_out)
  except (OSError, http.client.HTTPException) as e:
    offline = "" if source else "; offline, pass a copy downloaded elsewhere (or its folder) with --from=PATH"
    raise FetchError(f"could not read {location} ({e}){offline}") from None
  if digest != data.sha256:
    raise FetchError(f"{location} has sha256 {digest}, expected {data.sha256}: nothing stored")
  with tarfile.open(archive) as tar:
    members = [m for m in tar.getmembers() if m.isfile() and os.path.dirname(m.name) == data.extract]
    for member in members:
      with tar.extractfile(member) as stream, open(os.path.join(out, os.path.basename(member.name)), "wb") as f:
        shutil.copyfileobj(stream, f)
  os.remove(archive)
  if not members:
    raise FetchError(f"{location} holds no files in {data.extract}/: nothing stored")


def exit_on_missing_data(main):
  """An absl `main` that, when data is missing, prints the one-line message and exits with status 1."""
  @functools.wraps(main)
  def main_with_one_line_error(argv):
    try:
      return main(argv)
    except MissingDataError as e:
      sys.exit(str(e))
  return main_with_one_line_error


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m rnn_jax.data.fetch",
                                   description="Fetch a dataset into the data directory, checked against its SHA-256.")
  parser.add_argument("name", choices=list(DATASETS))
  parser.add_argument("--from", dest="source", default="", metavar="PATH",
                      help="copy this already-downloaded file (or, for a folder dataset, a copy of the folder) "
                           "instead of downloading (offline machines)")
  parser.add_argument("--data_dir", default="", metavar="DIR",
                      help=f"the data directory (default: ${ENV_VAR}, else {_DEFAULT_ROOT})")
  args = parser.parse_args(argv)
  try:
    path = fetch(args.name, args.source, args.data_dir)
  except FetchError as e:
    sys.exit(f"{args.name}: {e}")
  data = DATASETS[args.name]
  print(f"{args.name}: {path} (sha256 verified)\n  from: {data.url}\n  licence: {data.licence}")


if __name__ == "__main__":
  main()
