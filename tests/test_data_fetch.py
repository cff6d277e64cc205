"""rnn_jax.data.fetch: the data directory, `fetched:<name>` paths, and storing only files whose SHA-256 matches."""

import dataclasses
import functools
import hashlib
import http.server
import os
import subprocess
import sys
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
