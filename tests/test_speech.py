"""Speech: log-mel features against a direct NumPy computation, the utterance generators, a small learning run,
and recognition of WAV files written by the test."""

import glob
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal
from scipy.io import wavfile

from rnn_jax.data import fetch, spoken_digits
from rnn_jax.data.sources import DataError
from experiments.speech import augment, features, model, recognize, speech, sweep, utterances
from experiments.speech.configs import base as base_config, fsdd_official

SPEC = features.Spec(sample_rate=8000, window_ms=25.0, hop_ms=10.0, num_mels=40, delta_order=0)


def _direct_log_mel_frame(wave, frame, spec):
  """One frame's log-mel energies from the definitions: Hamming window, DFT sum, HTK-mel triangles."""
  w, hop, n_fft = 200, 80, 256
  n = np.arange(w)
  x = wave[frame * hop:frame * hop + w] * (0.54 - 0.46 * np.cos(2 * np.pi * n / (w - 1)))
  k = np.arange(n_fft // 2 + 1)
  power = np.abs(np.exp(-2j * np.pi * np.outer(k, n) / n_fft) @ x) ** 2
  mel = lambda hz: 2595 * np.log10(1 + hz / 700)
  edges = [700 * (10 ** (m / 2595) - 1) for m in np.linspace(0, mel(4000.0), spec.num_mels + 2)]
  energies = []
  for b in range(spec.num_mels):
    lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
    weight = 0.0 * power
    for i, hz in enumerate(k * 8000 / n_fft):
      if lo < hz <= mid:
        weight[i] = (hz - lo) / (mid - lo)
      elif mid < hz < hi:
        weight[i] = (hi - hz) / (hi - mid)
    energies.append(weight @ power)
  return np.log(np.asarray(energies) + features.LOG_FLOOR)


def test_log_mel_frames_match_direct_numpy_and_ignore_padding():
  rng = np.random.default_rng(0)
  t = np.arange(2000) / 8000
  wave = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
  longer = rng.standard_normal(3000).astype(np.float32)
  batch = np.zeros((2, 3000), np.float32)
  batch[0, :2000], batch[1] = wave, longer
  feats, frames = features.features(jnp.asarray(batch), jnp.asarray([2000, 3000]), SPEC)
  feats = np.asarray(feats)
  assert feats.shape == (2, 36, 40) and list(frames) == [23, 36]
  for frame in (0, 7, 22):
    np.testing.assert_allclose(feats[0, frame], _direct_log_mel_frame(wave, frame, SPEC), atol=2e-3)
  assert np.all(feats[0, 23:] == 0)
  assert np.argmax(feats[0, 7]) == np.argmax(_direct_log_mel_frame(wave, 7, SPEC))   # the 440 Hz band


def test_deltas_are_the_regression_formula_with_each_utterances_edges_repeated():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((9, 3)).astype(np.float32)
  padded = np.concatenate([x, 100 + rng.standard_normal((5, 3)).astype(np.float32)])   # junk past the length
  got = np.asarray(features.deltas(jnp.asarray(padded[None]), jnp.asarray([9])))[0, :9]
  edge = np.concatenate([x[:1], x[:1], x, x[-1:], x[-1:]])
  want = np.stack([(1 * (edge[t + 3] - edge[t + 1]) + 2 * (edge[t + 4] - edge[t])) / 10 for t in range(9)])
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("norm", ["mean", "mean_var"])
def test_utterance_normalisation_matches_numpy_over_each_utterances_own_frames(norm):
  rng = np.random.default_rng(3)
  waves = rng.standard_normal((2, 3000)).astype(np.float32) * np.asarray([[0.1], [0.7]], np.float32)
  lengths = np.asarray([1800, 3000])
  spec = features.Spec(delta_order=1, utterance_norm=norm)
  raw, frames = features.features(jnp.asarray(waves), jnp.asarray(lengths), features.Spec(delta_order=1))
  normed, _ = features.features(jnp.asarray(waves), jnp.asarray(lengths), spec)
  raw, normed = np.asarray(raw), np.asarray(normed)
  for b, n in enumerate(np.asarray(frames)):
    expected = raw[b, :n] - raw[b, :n].mean(0)
    if norm == "mean_var":
      expected = expected / raw[b, :n].std(0)
    np.testing.assert_allclose(normed[b, :n], expected, atol=1e-4, rtol=1e-4)
    assert np.all(normed[b, n:] == 0)


def test_normalizer_uses_valid_frames_only():
  rng = np.random.default_rng(2)
  feats = rng.normal(3.0, 2.0, (4, 50, 6)).astype(np.float32)
  frames = np.asarray([50, 20, 35, 10])
  for row, n in zip(feats, frames):
    row[n:] = 1e6
  normalizer = features.Normalizer.fit(feats, frames)
  valid = np.concatenate([f[:n] for f, n in zip(feats, frames)])
  np.testing.assert_allclose(normalizer.mean, valid.mean(0), rtol=1e-5)
  out = np.asarray(normalizer.apply(jnp.asarray(feats), jnp.asarray(frames)))
  assert np.all(out[1, 20:] == 0)
  normed = np.concatenate([f[:n] for f, n in zip(out, frames)])
  np.testing.assert_allclose(normed.std(0), 1.0, rtol=1e-4)


_LOW_HZ, _HIGH_HZ = (697, 770, 852, 941), (1209, 1336, 1477)
_KEYS = {(0, 0): 1, (0, 1): 2, (0, 2): 3, (1, 0): 4, (1, 1): 5, (1, 2): 6, (2, 0): 7, (2, 1): 8, (2, 2): 9,
         (3, 1): 0}


def _keypad_digit(segment):
  """The digit whose row and column tones are the strongest in `segment` (the keypad of ITU-T Q.23)."""
  spectrum = np.abs(np.fft.rfft(segment, 8000))   # 1 Hz bins
  row = int(np.argmax([spectrum[hz - 15:hz + 16].max() for hz in _LOW_HZ]))
  column = int(np.argmax([spectrum[hz - 20:hz + 21].max() for hz in _HIGH_HZ]))
  return _KEYS[(row, column)]


def test_dtmf_utterances_are_deterministic_and_their_tones_are_their_labels():
  cfg = base_config.base_config().data
  a, b = utterances.dtmf_utterance(cfg, "train", 3), utterances.dtmf_utterance(cfg, "train", 3)
  np.testing.assert_array_equal(a.wave, b.wave)
  assert not np.array_equal(a.wave[:1000], utterances.dtmf_utterance(cfg, "test", 3).wave[:1000])
  lengths = set()
  for index in range(12):
    utt = utterances.dtmf_utterance(cfg, "valid", index)
    lengths.add(len(utt.digits))
    assert 1 <= len(utt.digits) <= 7 and len(utt.spans) == len(utt.digits)
    assert [_keypad_digit(utt.wave[s:e]) for s, e in utt.spans] == utt.digits.tolist()
    gaps = np.concatenate([utt.wave[e:s] for (_, e), (s, _) in zip(utt.spans[:-1], utt.spans[1:])] + [[0.0]])
    tones = np.concatenate([utt.wave[s:e] for s, e in utt.spans])
    assert np.sqrt(np.mean(tones ** 2)) > 2 * np.sqrt(np.mean(gaps ** 2))
  assert len(lengths) > 3


def _write_recordings(folder, speakers, takes=2):
  """Distinct random 'recordings' per (speaker, digit, take); returns {(speaker, digit): [waves]}."""
  rng = np.random.default_rng(3)
  written = {}
  for speaker in speakers:
    for digit in range(10):
      for take in range(takes):
        wave = (rng.uniform(-0.5, 0.5, rng.integers(1500, 3000)) * 32767).astype(np.int16)
        wavfile.write(os.path.join(folder, f"{digit}_{speaker}_{take}.wav"), 8000, wave)
        written.setdefault((speaker, digit), []).append(wave / 32768.0)
  return written


def test_recordings_are_read_through_a_tfds_builder_prepared_again_when_a_file_changes(tmp_path):
  folder, tfds_dir = tmp_path / "recordings", str(tmp_path / "tfds")
  folder.mkdir()
  written = _write_recordings(str(folder), ("amy", "bob"))
  wavfile.write(str(folder / "12_amy_0.wav"), 8000, np.zeros(100, np.int16))   # two digits: not a recording
  recordings = spoken_digits.load_recordings(str(folder), tfds_dir)
  assert sorted(recordings) == sorted((s, d, t) for (s, d), takes in written.items() for t in range(len(takes)))
  for (speaker, digit, take), wave in recordings.items():
    np.testing.assert_array_equal(wave, written[(speaker, digit)][take].astype(np.float32))
  assert glob.glob(os.path.join(tfds_dir, "spoken_digits", "*", "*", "*.array_record*"))
  os.utime(folder / "3_bob_1.wav", (1e9, 1e9))   # a file changed: read again
  wavfile.write(str(folder / "3_bob_1.wav"), 8000, np.full(900, 16384, np.int16))
  np.testing.assert_array_equal(spoken_digits.load_recordings(str(folder), tfds_dir)[("bob", 3, 1)], 0.5)


def test_splits_by_speaker_or_by_recording_index():
  recordings = {(s, d, i): np.full(3, 100 * d + i, np.float32) for s in ("amy", "bob", "cid")
                for d in range(10) for i in range(12)}
  cfg = base_config.base_config().data
  cfg.fsdd.valid_speakers, cfg.fsdd.test_speakers = ("bob",), ("cid",)
  pools = utterances.split_recordings(recordings, cfg)
  assert {split: sorted(pool) for split, pool in pools.items()} == {"train": ["amy"], "valid": ["bob"],
                                                                     "test": ["cid"]}
  assert [w[0] for w in pools["train"]["amy"][4]] == [400 + i for i in range(12)]   # index order
  cfg.fsdd.valid_speakers, cfg.fsdd.valid_indices = (), (9, 11)   # validate on the training voices' recordings
  pools = utterances.split_recordings(recordings, cfg)
  assert {split: sorted(pool) for split, pool in pools.items()} == {"train": ["amy", "bob"],
                                                                     "valid": ["amy", "bob"], "test": ["cid"]}
  assert [w[0] for w in pools["valid"]["bob"][2]] == [209, 210]
  assert [w[0] for w in pools["train"]["amy"][2]] == [200 + i for i in (0, 1, 2, 3, 4, 5, 6, 7, 8, 11)]
  assert [w[0] for w in pools["test"]["cid"][2]] == [200 + i for i in range(12)]
  cfg.fsdd.split, cfg.fsdd.valid_indices = "indices", (5, 10)
  pools = utterances.split_recordings(recordings, cfg)
  for split, indices in (("test", range(0, 5)), ("valid", range(5, 10)), ("train", range(10, 12))):
    assert sorted(pools[split]) == ["amy", "bob", "cid"]
    assert [w[0] for w in pools[split]["bob"][7]] == [700 + i for i in indices]
  cfg.fsdd.valid_indices = (5, 12)
  with pytest.raises(ValueError, match="the train split lacks recordings"):
    utterances.split_recordings(recordings, cfg)


def test_connected_digits_are_deterministic_and_concatenate_the_speakers_recordings(tmp_path):
  written = _write_recordings(str(tmp_path), ("amy", "bob", "cid"))
  cfg = base_config.base_config().data
  cfg.source, cfg.path, cfg.snr_db = "fsdd", str(tmp_path), (200.0, 200.0)   # noise far below the samples
  cfg.tfds_dir = str(tmp_path / "tfds")
  cfg.fsdd.valid_speakers, cfg.fsdd.test_speakers = ("bob",), ("cid",)
  source = utterances.make_source(cfg)
  np.testing.assert_array_equal(source("test", 4).wave, source("test", 4).wave)
  for split, speaker in (("train", "amy"), ("test", "cid")):
    for index in range(6):
      utt = source(split, index)
      for digit, (start, end) in zip(utt.digits, utt.spans):
        segment = utt.wave[start:end]
        matches = [take for take in written[(speaker, int(digit))] if len(take) == len(segment)
                   and np.corrcoef(take, segment)[0, 1] > 0.9999]
        assert matches, (split, index, digit)


@pytest.mark.parametrize("source", ["dtmf", "fsdd"])
def test_a_recording_is_presented_at_the_training_level_edges_and_noise(source):
  cfg = base_config.base_config().data
  cfg.source = source
  peak = np.mean(cfg.dtmf.amplitude if source == "dtmf" else cfg.fsdd.peak)
  edge = int(np.mean(cfg.edge_ms) * 8)
  speech_part = np.sin(np.linspace(0, 300, 4000)).astype(np.float32)
  quiet = utterances.as_training_utterance(0.01 * speech_part, cfg)
  np.testing.assert_allclose(quiet, utterances.as_training_utterance(0.7 * speech_part, cfg), atol=1e-6)   # any level
  assert len(quiet) == 4000 + 2 * edge
  reference = (peak / np.sqrt(2) if source == "dtmf" else cfg.fsdd.peak[0]) / 10 ** (np.mean(cfg.snr_db) / 20)
  noise = np.concatenate([quiet[:edge], quiet[edge:-edge] - peak * speech_part / np.abs(speech_part).max(),
                          quiet[-edge:]])   # silence at the edges, the scaled recording in between
  np.testing.assert_allclose(np.sqrt(np.mean(noise ** 2)), reference, rtol=0.05)
  assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.05   # white


def test_speed_perturbation_scales_durations_and_frequencies():
  t = np.arange(8000) / 8000
  faster = augment.resample_speed(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 1.1)
  assert abs(len(faster) - 8000 / 1.1) <= 1
  spectrum = np.abs(np.fft.rfft(faster[200:-200] * np.hanning(len(faster) - 400), 8000))   # 1 Hz bins
  assert abs(np.argmax(spectrum) - 1100) <= 2
  cfg = base_config.base_config().augment
  cfg.gain_db = (6.0, 6.0)
  wave = np.random.default_rng(0).standard_normal(500).astype(np.float32)
  np.testing.assert_allclose(augment.perturb_wave(wave, np.random.default_rng(1), cfg), wave * 10 ** 0.3, rtol=1e-6)


def test_masks_cover_whole_mel_bands_in_every_delta_order_and_spans_inside_each_utterance():
  cfg = base_config.base_config().augment
  feats = np.random.default_rng(0).uniform(1, 2, (16, 60, 3 * 40)).astype(np.float32)
  frames = np.arange(16) * 3 + 10
  masked = lambda: np.asarray(jax.jit(lambda k, f, n: augment.mask_features(k, f, n, 40, cfg))(
      jax.random.PRNGKey(0), feats, jnp.asarray(frames)))
  np.testing.assert_array_equal(masked(), feats)
  cfg.freq_masks, cfg.freq_mask_width, cfg.time_masks, cfg.time_mask_width = 2, 6, 2, 5
  out = masked()
  zero = out == 0
  assert np.all((out == feats) | zero)
  for row, n in zip(zero, frames):
    bands = row.all(axis=0)                     # channels masked at every frame
    spans = row.all(axis=1)                     # frames masked in every channel
    np.testing.assert_array_equal(bands[:40], bands[40:80])
    np.testing.assert_array_equal(bands[:40], bands[80:])
    assert bands[:40].sum() <= 12 and spans.sum() <= 10 and not spans[n:].any()
    np.testing.assert_array_equal(row, bands[None, :] | spans[:, None])
  assert zero.all(axis=1).any() and zero.all(axis=2).any()     # some bands and spans were drawn


@pytest.mark.parametrize("rate,channels,dtype", [(8000, 1, np.int16), (16000, 2, np.int16), (44100, 2, np.int32),
                                                 (22050, 1, np.uint8), (48000, 1, np.float32)])
def test_a_wav_of_any_rate_and_channels_reads_as_mono_8khz(tmp_path, rate, channels, dtype):
  # One second of a 440 Hz tone at half scale beside a 3 kHz one at 0.1 (below 4 kHz: kept) in the left channel,
  # and in the right one, where there is a right one, the 440 Hz tone alone.
  t = np.arange(rate) / rate
  left = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)
  audio = left if channels == 1 else np.stack([left, 0.5 * np.sin(2 * np.pi * 440 * t)], axis=1)   # [N] or [N, 2]
  if dtype == np.uint8:
    stored = np.round(audio * 127 + 128).astype(np.uint8)
  elif dtype == np.float32:
    stored = audio.astype(np.float32)
  else:
    stored = np.round(audio * np.iinfo(dtype).max).astype(dtype)
  wavfile.write(str(tmp_path / "tone.wav"), rate, stored)
  wave = spoken_digits.read_wav(str(tmp_path / "tone.wav"))
  assert wave.dtype == np.float32 and wave.shape == (8000,)
  spectrum = np.abs(np.fft.rfft(wave[1000:7000] * np.hanning(6000))) / (np.hanning(6000).sum() / 2)
  frequencies = np.fft.rfftfreq(6000, 1 / 8000)
  assert frequencies[np.argmax(spectrum)] == pytest.approx(440, abs=2)
  np.testing.assert_allclose(spectrum.max(), 0.5, atol=0.02)
  np.testing.assert_allclose(spectrum[np.abs(frequencies - 3000) < 3].max(), 0.1 / channels, atol=0.01)
  assert abs(wave.mean()) < 0.01   # 8-bit WAVs are unsigned around 128


def test_one_line_errors_before_compute(tmp_path):
  (tmp_path / "notes.wav").write_text("not audio")
  with pytest.raises(DataError, match=r"notes.wav: not a WAV file \(File format b'not ' not understood"):
    spoken_digits.read_wav(str(tmp_path / "notes.wav"))
  (tmp_path / "notes.wav").unlink()
  config = base_config.base_config()
  config.data.source, config.data.path = "fsdd", ""
  with pytest.raises(ValueError, match="config.data.path"):
    speech.validate(config)
  bad_norm = base_config.base_config()
  bad_norm.features.utterance_norm = "cmvn"
  with pytest.raises(ValueError, match=r"config.features.utterance_norm must be one of \('none', 'mean', 'mean_var'\)"):
    speech.validate(bad_norm)
  config.data.path = str(tmp_path / "empty")
  with pytest.raises(DataError, match="no folder of recordings at .*empty'"):
    utterances.make_source(config.data)


def test_fsdd_not_fetched_stops_before_compute_naming_the_fetch_command(tmp_path, monkeypatch):
  monkeypatch.setenv(fetch.ENV_VAR, str(tmp_path / "data"))
  config = fsdd_official.get_config()
  assert config.data.path == "fetched:fsdd"
  with pytest.raises(fetch.MissingDataError, match=re.escape(f"fsdd is not in {tmp_path / 'data'}: run python -m "
                                                             "rnn_jax.data.fetch fsdd (or --from=PATH offline)")):
    speech.run(config, str(tmp_path / "run"))
  assert not os.listdir(tmp_path)


def _lstm_ctc_parameters(features_in: int, hidden: int, layers: int, directions: int) -> int:
  """Four gates of `hidden` units on [input, hidden state, 1] per layer and direction, and the dense to 11."""
  inputs = [features_in] + [directions * hidden] * (layers - 1)
  return sum(directions * 4 * hidden * (size + hidden + 1) for size in inputs) + (directions * hidden + 1) * 11


def test_sweep_points_cover_depths_and_directions_at_the_parameter_count_of_the_config():
  config = base_config.base_config()
  stacked = features.spec_from_config(config.features).size * config.model.subsample
  target = _lstm_ctc_parameters(stacked, config.model.hidden_size, config.model.num_layers, 2)
  points = sweep.points(config)
  assert [name for name, _ in points] == [f"depth{d}_{b}" for d in (1, 2, 3, 5) for b in ("uni", "bi")]
  for name, point in points:
    m = point.model
    assert (m.num_layers, m.bidirectional) == (int(name[5]), name.endswith("_bi"))
    counts = [_lstm_ctc_parameters(stacked, m.hidden_size + d, m.num_layers, 1 + m.bidirectional) for d in (-1, 0, 1)]
    assert abs(counts[1] - target) <= min(abs(counts[0] - target), abs(counts[2] - target)), name
    assert abs(counts[1] - target) <= 0.02 * target, name


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
  """A small BLSTM trained on 1-3 keypad digits, features normalised per utterance as in the FSDD configs
  (about 60 s on 2 CPU cores)."""
  config = base_config.base_config()
  config.data.max_digits = 3
  config.data.sizes = (100000, 64, 64)
  config.data.pad_frames = 64
  config.features.utterance_norm = "mean_var"
  config.model.hidden_size = 32
  config.model.num_layers = 1
  config.batch_size = 16
  config.optimizer.learning_rate = 1e-2
  config.num_steps, config.eval_every, config.checkpoint_every, config.log_every = 300, 300, 300, 50
  workdir = str(tmp_path_factory.mktemp("speech"))
  return workdir, speech.run(config, workdir)


def test_small_model_learns_keypad_digits(trained_workdir):
  workdir, results = trained_workdir
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["test_beam_der"] == results["test_beam_der"]
  assert results["test_best_path_der"] < 0.05 and results["test_beam_der"] < 0.05
  assert results["test_beam_string_acc"] > 0.9


def test_recognize_and_eval_on_written_wavs(trained_workdir, tmp_path):
  workdir, _ = trained_workdir
  noisy = base_config.base_config().data   # as in training
  clean = base_config.base_config().data   # as a phone might record them: quiet, no noise, no silence around
  clean.snr_db, clean.edge_ms, clean.dtmf.amplitude = (200.0, 200.0), (0.0, 0.0), (0.02, 0.02)
  names = []
  for tag, cfg in (("tones", noisy), ("clean", clean), ("phone", clean)):   # phone: 44.1 kHz stereo
    cfg.max_digits = 3
    for index in range(6):
      utt = utterances.dtmf_utterance(cfg, "test", 1000 + index + (tag == "phone") * 6)
      names.append("".join(map(str, utt.digits)) + f"_{tag}_{index}.wav")
      rate, wave = (44100, np.stack([signal.resample_poly(utt.wave, 441, 80)] * 2, axis=1)) if tag == "phone" else (
          8000, utt.wave)
      wavfile.write(str(tmp_path / names[-1]), rate, (wave * 32767).astype(np.int16))
  out = subprocess.run([sys.executable, "-m", "experiments.speech.main", "--mode=recognize",
                        f"--workdir={workdir}", f"--input={tmp_path}"], capture_output=True, text=True, check=True)
  printed = dict(line.split("\t") for line in out.stdout.rstrip("\n").split("\n"))   # "" where none decoded
  right = sum(printed[str(tmp_path / name)] == name.split("_")[0] for name in names)
  assert right >= 15, out.stdout
  scores = recognize.evaluate_folder(recognize.load(workdir), str(tmp_path), workdir)
  assert scores["files"] == 18 and scores["string_acc"] == right / 18
  assert os.path.exists(os.path.join(workdir, "eval.json"))
