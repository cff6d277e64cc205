"""rnn_jax.data.fetch: the data directory, `fetched:<name>` paths, and storing only files whose SHA-256 matches."""

import dataclasses
import functools
import hashlib
import http.server
import os
import subprocess
import sys
import tarfile
import threading

import pytest

from rnn_jax.data import fetch
from rnn_jax.data.datasets import DATASETS
from tests.conftest import fetched_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TEXT = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"


def _stored_files(root):
  return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def small_dataset(monkeypatch):
  """`set_url(url)`: tiny_shakespeare's table entry becomes `_TEXT` (its checksum) downloaded from `url`."""
  def set_url(url):
    entry = dataclasses.replace(DATASETS["tiny_shakespeare"], url=url, sha256=hashlib.sha256(_TEXT).hexdigest())
    monkeypatch.setitem(DATASETS, "tiny_shakespeare", entry)
  return set_url


def test_data_directory_is_the_flag_else_the_environment_else_home(monkeypatch, tmp_path):
  monkeypatch.delenv(fetch.ENV_VAR, raising=False)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert fetch.data_root() == str(tmp_path / "home" / "rnn_jax_data")
  monkeypatch.setenv(fetch.ENV_VAR, str(tmp_path / "env"))
  assert fetch.data_root() == str(tmp_path / "env")
  assert fetch.data_root(str(tmp_path / "flag")) == str(tmp_path / "flag")
  assert fetch.local_path("uji_pen_digits") == str(tmp_path / "env" / "uji_pen_digits" / "ujipenchars2_digits.json")


def test_resolve_maps_fetched_names_and_leaves_other_paths(monkeypatch, tmp_path):
  monkeypatch.setenv(fetch.ENV_VAR, str(tmp_path))
  assert fetch.resolve("corpus/input.txt") == "corpus/input.txt"
  with pytest.raises(fetch.MissingDataError, match=r"^tiny_shakespeare is not in .*: run python -m "
                                                   r"rnn_jax\.data\.fetch tiny_shakespeare \(or --from=PATH offline\)$"):
    fetch.resolve("fetched:tiny_shakespeare")
  (tmp_path / "tiny_shakespeare").mkdir()
  (tmp_path / "tiny_shakespeare" / "input.txt").write_bytes(_TEXT)
  assert fetch.resolve("fetched:tiny_shakespeare") == str(tmp_path / "tiny_shakespeare" / "input.txt")
  with pytest.raises(ValueError, match="unknown dataset 'shakespeare'; fetchable: tiny_shakespeare"):
    fetch.resolve("fetched:shakespeare")


@pytest.mark.parametrize("name", list(DATASETS))
def test_fetch_from_a_local_copy_stores_the_checked_file(name, tmp_path, capsys):
  copy = fetched_file(name)
  fetch.main([name, f"--from={copy}", f"--data_dir={tmp_path}"])
  stored = tmp_path / name / DATASETS[name].filename
  if DATASETS[name].extract:   # a folder
    assert fetch.contents_sha256(str(stored)) == DATASETS[name].contents_sha256
    assert sorted(os.listdir(stored)) == sorted(os.listdir(copy))
  else:
    assert stored.read_bytes() == open(copy, "rb").read()
    assert fetch.sha256_of(str(stored)) == DATASETS[name].sha256
    assert _stored_files(tmp_path) == [f"{name}/{DATASETS[name].filename}"]
  assert f"{name}: {stored} (sha256 verified)" in capsys.readouterr().out


def test_corrupted_copy_is_refused_in_one_line_and_nothing_is_stored(tmp_path):
  corrupted = tmp_path / "input.txt"
  corrupted.write_bytes(_TEXT)  # a truncated download
  data_dir = tmp_path / "data"
  result = subprocess.run([sys.executable, "-m", "rnn_jax.data.fetch", "tiny_shakespeare", f"--from={corrupted}",
                           f"--data_dir={data_dir}"], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                          capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1
  assert result.stderr.splitlines() == [
      f"tiny_shakespeare: {corrupted} has sha256 {hashlib.sha256(_TEXT).hexdigest()}, expected "
      f"{DATASETS['tiny_shakespeare'].sha256}: nothing stored"]
  assert _stored_files(data_dir) == [] and not (data_dir / "tiny_shakespeare").exists()


def test_a_file_already_at_the_destination_is_kept_unless_it_is_the_dataset(small_dataset, tmp_path):
  small_dataset("file:///nonexistent")
  mine = tmp_path / "tiny_shakespeare" / "input.txt"
  mine.parent.mkdir()
  mine.write_bytes(b"my own corpus")
  with pytest.raises(fetch.FetchError, match="exists but its sha256 is not tiny_shakespeare's: move it away"):
    fetch.fetch("tiny_shakespeare", root=str(tmp_path))
  assert mine.read_bytes() == b"my own corpus"
  mine.write_bytes(_TEXT)
  assert fetch.fetch("tiny_shakespeare", root=str(tmp_path)) == str(mine)  # already there: nothing to read


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, *args):  # pylint: disable=arguments-differ
    del args


@pytest.fixture
def http_server(tmp_path):
  """A web server on 127.0.0.1 serving `tmp_path / "site"`; yields its base URL."""
  site = tmp_path / "site"
  site.mkdir()
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_address[1]}"
  server.shutdown()
  server.server_close()


def test_download_over_http_stores_the_checked_file(small_dataset, http_server, tmp_path):
  (tmp_path / "site" / "input.txt").write_bytes(_TEXT)
  small_dataset(f"{http_server}/input.txt")
  path = fetch.fetch("tiny_shakespeare", root=str(tmp_path / "data"))
  assert path == str(tmp_path / "data" / "tiny_shakespeare" / "input.txt")
  assert _stored_files(tmp_path / "data") == ["tiny_shakespeare/input.txt"]
  assert open(path, "rb").read() == _TEXT and oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_download_from_a_file_url_stores_the_checked_file(small_dataset, tmp_path):
  (tmp_path / "input.txt").write_bytes(_TEXT)
  small_dataset((tmp_path / "input.txt").as_uri())
  assert open(fetch.fetch("tiny_shakespeare", root=str(tmp_path / "data")), "rb").read() == _TEXT


def test_failed_download_names_the_offline_option_and_stores_nothing(small_dataset, http_server, tmp_path):
  small_dataset(f"{http_server}/missing.txt")
  with pytest.raises(fetch.FetchError, match=r"could not read http://127\.0\.0\.1:\d+/missing\.txt \(HTTP Error 404"
                                             r".*offline, pass a copy downloaded elsewhere with --from=PATH$"):
    fetch.fetch("tiny_shakespeare", root=str(tmp_path / "data"))
  assert _stored_files(tmp_path / "data") == [] and not (tmp_path / "data" / "tiny_shakespeare").exists()


def test_download_with_the_wrong_checksum_stores_nothing(small_dataset, http_server, tmp_path):
  (tmp_path / "site" / "input.txt").write_bytes(_TEXT + b"tampered")
  small_dataset(f"{http_server}/input.txt")
  with pytest.raises(fetch.FetchError, match="has sha256 .* expected .*: nothing stored"):
    fetch.fetch("tiny_shakespeare", root=str(tmp_path / "data"))
  assert _stored_files(tmp_path / "data") == []



_RECORDINGS = {"0_amy_0.wav": b"RIFF zero", "1_amy_0.wav": b"RIFF one", "1_bob_3.wav": b"RIFF one again"}


@pytest.fixture
def small_folder_dataset(monkeypatch, tmp_path):
  """fsdd's table entry becomes a tar.gz of `_RECORDINGS` written by the test; returns (archive, folder)."""
  folder = tmp_path / "copy" / "recordings"
  folder.mkdir(parents=True)
  for name, data in _RECORDINGS.items():
    (folder / name).write_bytes(data)
  archive = tmp_path / "release.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(folder, arcname="release-1.0/recordings")
    tar.add(tmp_path / "copy", arcname="release-1.0", recursive=False)
  listing = subprocess.run("sha256sum * | sha256sum", shell=True, cwd=folder, capture_output=True, text=True,
                           env={**os.environ, "LC_ALL": "C"}, check=True).stdout.split()[0]
  entry = dataclasses.replace(DATASETS["fsdd"], url="https://example.invalid/release.tar.gz",
                              sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
                              extract="release-1.0/recordings", contents_sha256=listing)
  monkeypatch.setitem(DATASETS, "fsdd", entry)
  return archive, folder


@pytest.mark.parametrize("source", ["archive", "folder", "folder above"])
def test_a_folder_dataset_is_stored_from_its_archive_or_a_copy_of_the_folder(small_folder_dataset, tmp_path,
                                                                               monkeypatch, source):
  archive, folder = small_folder_dataset
  location = {"archive": archive, "folder": folder, "folder above": folder.parent}[source]
  fetch.main(["fsdd", f"--from={location}", f"--data_dir={tmp_path / 'data'}"])
  assert _stored_files(tmp_path / "data") == sorted(f"fsdd/recordings/{n}" for n in _RECORDINGS)
  for name, data in _RECORDINGS.items():
    assert (tmp_path / "data" / "fsdd" / "recordings" / name).read_bytes() == data
  monkeypatch.setenv(fetch.ENV_VAR, str(tmp_path / "data"))
  assert fetch.resolve("fetched:fsdd") == str(tmp_path / "data" / "fsdd" / "recordings")


def test_a_folder_copy_or_archive_that_differs_is_refused_in_one_line_and_nothing_is_stored(small_folder_dataset,
                                                                                            tmp_path):
  archive, folder = small_folder_dataset
  (folder / "1_bob_3.wav").write_bytes(b"RIFF changed")
  with pytest.raises(SystemExit, match=r"^fsdd: the files of .*recordings have contents sha256 [0-9a-f]{64}, "
                                       r"expected [0-9a-f]{64} \(`sha256sum \* \| sha256sum` there\): .*nothing stored$"):
    fetch.main(["fsdd", f"--from={folder}", f"--data_dir={tmp_path / 'data'}"])
  archive.write_bytes(archive.read_bytes()[:-1])
  with pytest.raises(SystemExit, match=r"^fsdd: .*release.tar.gz has sha256 [0-9a-f]{64}, expected .*: nothing stored$"):
    fetch.main(["fsdd", f"--from={archive}", f"--data_dir={tmp_path / 'data'}"])
  assert _stored_files(tmp_path / "data") == [] and not (tmp_path / "data" / "fsdd").exists()


def test_no_file_in_the_repository_reads_data_from_outside_it():
  outside = "/".join(["..", "shared"])  # spelled in parts so that this file does not match itself
  offenders = []
  for root, dirs, files in os.walk(REPO):
    dirs[:] = [d for d in dirs if not d.startswith((".", "__")) and not d.startswith("runs")]
    for name in files:
      path = os.path.join(root, name)
      if name.endswith((".py", ".md", ".ipynb", ".cfg", ".toml")) and outside in open(path, encoding="utf-8").read():
        offenders.append(os.path.relpath(path, REPO))
  assert offenders == []
