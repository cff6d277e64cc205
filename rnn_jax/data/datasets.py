"""The real datasets the experiments use: public source, licence, and the SHA-256 of each file.

`python -m rnn_jax.data.fetch NAME` downloads a file from its `url` (or copies one given with
`--from=PATH`), checks it against `sha256` and stores it as `<data root>/NAME/<filename>`. Each
file is stored exactly as downloaded (renamed at most), so the checksum is of the downloaded file.
A dataset with `extract` is a folder of an archive: the archive (checked against `sha256`) is unpacked
and that folder's files are stored as the folder `<data root>/NAME/<filename>`; `--from=` then also takes a
local copy of the folder, checked against `contents_sha256` (what `sha256sum * | sha256sum` prints in it,
file names in C-locale order).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str      # the folder under the data root, and the name the fetch command takes
  url: str       # where the file is downloaded from (pinned to a commit)
  filename: str  # the file as stored in the folder
  sha256: str    # of the downloaded file
  licence: str
  origin: str    # what the file is and how its publisher made it
  extract: str = ""          # the archive's folder to store (its files, no subfolders); "" = store the file
  contents_sha256: str = ""  # of that folder's files (`sha256sum * | sha256sum`), to check a local copy


DATASETS = {d.name: d for d in (
    Dataset(
        name="tiny_shakespeare",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/d1d7aa34fdb3626174bce1d753e6cc6845ce7087/"
            "data/tinyshakespeare/input.txt",
        filename="input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        licence="text: Shakespeare, public domain; char-rnn repository: MIT",
        origin="Tiny Shakespeare from karpathy/char-rnn (data/tinyshakespeare/input.txt): 40,000 lines of "
               "Shakespeare's plays, 1,115,394 bytes of UTF-8 text"),
    Dataset(
        name="tatoeba_fra_eng",
        url="https://raw.githubusercontent.com/genimind/seq2seq/4f3f8eb0adde54fcc8b89394336b002e7961244c/"
            "fra-eng.zip",
        filename="fra-eng.zip",
        sha256="16c4f7d0df9e7c5e6c54cdb0447f3f4a18a55052ff5e2e0b27dd4a06c0e49d04",
        licence="CC BY 2.0 (attribution: tatoeba.org and www.manythings.org/anki, as the zip's _about.txt says)",
        origin="Tatoeba English-French sentence pairs as packaged by manythings.org/anki on 2017-09-29 "
               "(fra.txt: 142,787 'English<TAB>French' lines, and _about.txt), kept in genimind/seq2seq; "
               "manythings.org's current fra-eng.zip is a later, different file"),
    Dataset(
        name="uji_pen_digits",
        url="https://raw.githubusercontent.com/bridger/NumberPad/c51906b986d49f8e0a709aa1813dfb5d460b0e2f/"
            "Data/ujipenchars2.json",
        filename="ujipenchars2_digits.json",
        sha256="e09d00763f0ff33a98f5e2d14b3140c41423b27497af543c9cef4cdc1f3edc31",
        licence="data: CC BY 4.0 (UCI ML Repository; cite Prat, Castro, Llorens, Marzal and Vilar 2008/2009); "
                "NumberPad repository: Apache-2.0",
        origin="the digits 0-9 of UCI's UJI Pen Characters (Version 2) (60 writers x 2 samples x 10 digits), "
               "converted to JSON by bridger/NumberPad (Data/ujipenchars2.json, stored renamed): "
               "{'rawData': {digit: [sample]}}, a sample a list of pen-down strokes of [x, y] tablet points"),
    Dataset(
        name="fsdd",
        url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/v1.0.9.tar.gz",
        filename="recordings",
        sha256="8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0",
        licence="CC BY-SA 4.0 (attribute: Free Spoken Digit Dataset (FSDD), Zohar Jackson et al., "
                "DOI 10.5281/zenodo.1342401)",
        origin="the Free Spoken Digit Dataset release v1.0.9 (github.com/Jakobovski/free-spoken-digit-dataset, "
               "the tag's source archive, 11,975,353 bytes): its recordings/ folder, 2,500 mono 8 kHz WAVs "
               "{digit}_{speaker}_{index}.wav, 50 of each digit by each of five speakers (george, jackson, "
               "lucas, nicolas, theo); indices 0-4 are the dataset's own test set",
        extract="free-spoken-digit-dataset-1.0.9/recordings",
        contents_sha256="6683e4cce57553414a3f46d7e6159c614cdbba1313f3ca0f3ea109523db11ea6"),
)}
