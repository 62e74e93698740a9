"""Google Speech Commands v2, 12 classes, as log-mel sequences.

Inputs ``(N, 101, 40)`` float32: 101 frames of 10 ms (hop 160 at 16 kHz) x 40 mel bands,
z-scored per utterance. Two splits (``config.split``):

* ``"official"`` (default; the TC-LIF code's split, from the raw v0.02 archive,
  ``speech_commands_v0.02.tar.gz`` extracted into ``<dir>/speech_commands_v0.02``):
  test = the clips in ``testing_list.txt`` (11,005), valid = ``validation_list.txt``
  (9,981; never used to train), train = every other clip (84,843) plus the 6 files of
  ``_background_noise_``, each one example labelled silence and, like every clip,
  cropped to its first 101 frames (so silence occurs in train only). Labels
  (``OFFICIAL_LABELS``): 0 unknown (any other word), 1 silence, 2..11 yes, no, up, down,
  left, right, on, off, stop, go. Each split is in a fixed shuffled order (seed 0), so a
  ``*_limit`` keeps a mix of classes.
* ``"tfds"``: TFDS ``speech_commands``: its train/validation splits and the separate
  v0.02 test archive (4,890 clips, with silence chopped from the background noise).
  Labels (``TFDS_LABELS``): 0..9 down, go, left, no, off, on, right, stop, up, yes;
  10 silence; 11 unknown.

Recipe (official code, librosa < 0.10): int16 audio / 32768; STFT n_fft 480 (Hann,
centred, reflect padding, librosa's old default), |X| ** 1.0; 40 Slaney mel bands,
40..4000 Hz; ``power_to_db(ref=max)`` (10 log10 of a magnitude, amin 1e-10, top_db 80;
the max is over the whole file, also for the long background files); pad with 0 (after
dB) or crop to 101 frames; z-score with torch's unbiased std (ddof 1), skipped when
std == 0. Computed once per split and cached as .npz, keyed by split source, recipe and
limit.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import wave

import numpy as np
from absl import logging

from tclif_jax.data._common import (
    DataCorruptError,
    DataNotFoundError,
    DatasetSpec,
    check_finite,
    check_labels,
    choice,
    default_data_dir,
    flag,
    integer,
    number,
    take,
    text,
)

__all__ = [
    "LABELS",
    "OFFICIAL_LABELS",
    "TFDS_LABELS",
    "WORDS",
    "RECIPE_FIELDS",
    "compute_features",
    "mel_basis",
    "official_split",
    "read_wav",
    "load_gsc",
    "SPECS",
]

TFDS_LABELS = (
    "down",
    "go",
    "left",
    "no",
    "off",
    "on",
    "right",
    "stop",
    "up",
    "yes",
    "_silence_",
    "_unknown_",
)
LABELS = TFDS_LABELS  # the TFDS order (kept for callers of the old name)
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
OFFICIAL_LABELS = ("_unknown_", "_silence_", *WORDS)
BACKGROUND = "_background_noise_"
NUM_CLASSES = len(OFFICIAL_LABELS)  # == len(TFDS_LABELS)
SPLIT_SOURCES = ("official", "tfds")
PAD_MODES = ("reflect", "constant", "edge", "symmetric", "wrap")  # np.pad's, as librosa takes
RECIPE_FIELDS = (
    "sample_rate",
    "n_fft",
    "hop_length",
    "n_mels",
    "fmin",
    "fmax",
    "num_frames",
    "pad_mode",
    "top_db",
)
SPLITS = {"train": "train", "valid": "validation", "test": "test"}
# Bump when the feature code changes meaning, so old caches are not reused.
FEATURE_VERSION = 1
# Clips read and featurised at a time on the official path (bounds the audio held).
_FILE_CHUNK = 512


def _hz_to_mel(f):
    # Slaney's scale (librosa's htk=False): linear below 1 kHz, logarithmic above.
    f = np.asarray(f, np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m):
    m = np.asarray(m, np.float64)
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def mel_basis(recipe) -> np.ndarray:
    """Slaney mel filter bank ``(n_mels, n_fft // 2 + 1)`` float32, area-normalised.

    Equals ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)`` (tested), without
    importing librosa (seconds of numba start-up).
    """
    sr, n_fft, n_mels = recipe["sample_rate"], recipe["n_fft"], recipe["n_mels"]
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(
        np.linspace(_hz_to_mel(recipe["fmin"]), _hz_to_mel(recipe["fmax"]), n_mels + 2)
    )
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


def _hann(n: int) -> np.ndarray:
    # Periodic Hann, as scipy.signal.get_window("hann", n, fftbins=True) that librosa uses.
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def compute_features(clips, recipe, chunk: int = 256) -> np.ndarray:
    """Log-mel features ``(N, num_frames, n_mels)`` float32 of 1-D int16 (or float) clips.

    Clips of different lengths are framed together: each clip is centre-padded on its own,
    then zero-extended to the chunk's longest, and frames past a clip's own
    ``1 + len // hop`` are masked out before ``ref=max`` and replaced by the 0 dB padding.
    """
    n_fft, hop, frames_out = recipe["n_fft"], recipe["hop_length"], recipe["num_frames"]
    basis = mel_basis(recipe)
    window = _hann(n_fft)
    out = np.zeros((len(clips), frames_out, recipe["n_mels"]), np.float32)
    for start in range(0, len(clips), chunk):
        batch = clips[start : start + chunk]
        audio = [np.asarray(c).reshape(-1) for c in batch]
        audio = [
            a.astype(np.float32) / 32768.0 if a.dtype.kind in "iu" else a.astype(np.float32)
            for a in audio
        ]
        n_frames = np.array([1 + len(a) // hop for a in audio])
        padded_len = max(len(a) for a in audio) + 2 * (n_fft // 2)
        padded = np.zeros((len(audio), padded_len), np.float32)
        for i, a in enumerate(audio):
            # numpy's reflect needs >= 2 samples; shorter clips get zeros like librosa's "constant".
            mode = recipe["pad_mode"] if len(a) >= 2 else "constant"
            p = np.pad(a, n_fft // 2, mode=mode)
            padded[i, : len(p)] = p
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop]
        frames = frames[:, : n_frames.max()]
        mag = np.abs(np.fft.rfft(frames * window, axis=-1)).astype(np.float32)
        mel = mag @ basis.T  # (B, frames, n_mels)
        valid = np.arange(mel.shape[1])[None, :] < n_frames[:, None]
        ref = np.where(valid[..., None], mel, 0.0).max(axis=(1, 2), keepdims=True)
        db = 10.0 * np.log10(np.maximum(1e-10, mel)) - 10.0 * np.log10(np.maximum(1e-10, ref))
        if recipe["top_db"] is not None:
            db_max = np.where(valid[..., None], db, -np.inf).max(axis=(1, 2), keepdims=True)
            db = np.maximum(db, db_max - recipe["top_db"])
        db = np.where(valid[..., None], db, 0.0)
        if db.shape[1] < frames_out:
            db = np.concatenate(
                [db, np.zeros((len(db), frames_out - db.shape[1], db.shape[2]), db.dtype)], axis=1
            )
        db = db[:, :frames_out].astype(np.float64)
        # Per utterance, over all frames including the padding; unbiased std as torch's.
        mean = db.mean(axis=(1, 2), keepdims=True)
        std = db.std(axis=(1, 2), keepdims=True, ddof=1)
        db = np.where(std != 0, (db - mean) / np.where(std != 0, std, 1.0), db)
        out[start : start + len(batch)] = db
    return out


def recipe_of(config) -> dict:
    return {k: config[k] for k in RECIPE_FIELDS}


def cache_dir_of(config) -> str:
    root = os.path.expanduser(config.dir) if config.dir else default_data_dir()
    return config.cache_dir or os.path.join(root, "tclif_gsc_features")


def cache_path(config, split: str, limit: int) -> str:
    """The feature cache of ``split``: one file per split source, recipe and limit."""
    source = config.get("split", "tfds")
    key = {
        "dataset": "speech_commands" if source == "tfds" else "speech_commands_v0.02_official",
        "split": split,
        "limit": int(limit),
        "version": FEATURE_VERSION,
        **recipe_of(config),
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    prefix = "gsc" if source == "tfds" else "gsc_official"
    return os.path.join(cache_dir_of(config), f"{prefix}_{split}_{limit or 'all'}_{digest}.npz")


# ----------------------------------------------------------------------------- official split


def raw_candidates(dir: str) -> list[str]:
    """Folders searched for the extracted v0.02 archive (the one holding testing_list.txt)."""
    root = os.path.expanduser(dir) if dir else default_data_dir()
    return [os.path.join(root, "speech_commands_v0.02"), root]


def find_raw_dir(dir: str) -> str | None:
    for folder in raw_candidates(dir):
        if all(
            os.path.isfile(os.path.join(folder, f))
            for f in ("testing_list.txt", "validation_list.txt")
        ):
            return folder
    return None


def _read_list(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def official_split(raw_dir: str) -> dict[str, tuple[list[str], np.ndarray]]:
    """``{split: (relative wav paths, labels int32)}`` of the official TC-LIF split.

    test: ``testing_list.txt``; valid: ``validation_list.txt``; train: every other clip
    of the word folders plus each ``_background_noise_/*.wav`` as one silence example.
    Each split in a fixed shuffled order (seed 0). A listed file that is missing raises
    ``DataCorruptError``.
    """
    lists = {
        "test": _read_list(os.path.join(raw_dir, "testing_list.txt")),
        "valid": _read_list(os.path.join(raw_dir, "validation_list.txt")),
    }
    held_out = set(lists["test"]) | set(lists["valid"])
    clips, noise = [], []
    for word in sorted(os.listdir(raw_dir)):
        folder = os.path.join(raw_dir, word)
        if not os.path.isdir(folder):
            continue
        wavs = sorted(f for f in os.listdir(folder) if f.endswith(".wav"))
        (noise if word == BACKGROUND else clips).extend(f"{word}/{f}" for f in wavs)
    on_disk = set(clips)
    for split, names in lists.items():
        missing = [p for p in names if p not in on_disk]
        if missing:
            raise DataCorruptError(
                f"gsc: {len(missing)} clips of {split} list ({missing[0]}, ...) are not in "
                f"{raw_dir}; the extraction is incomplete. Delete that folder and fetch it "
                f"again (--config.data.download=True)."
            )
    lists["train"] = [p for p in clips if p not in held_out] + noise
    word_label = {w: i for i, w in enumerate(OFFICIAL_LABELS)}
    out = {}
    for split in ("train", "valid", "test"):
        names = sorted(lists[split])
        names = [names[i] for i in np.random.default_rng(0).permutation(len(names))]
        labels = [
            1 if p.startswith(BACKGROUND + "/") else word_label.get(p.split("/")[0], 0)
            for p in names
        ]
        out[split] = (names, np.asarray(labels, np.int32))
    return out


def read_wav(path: str, sample_rate: int = 16000) -> np.ndarray:
    """Mono audio of a WAV file: int16 samples as stored, other formats float32 in [-1, 1].

    Several channels are averaged (as ``librosa.load``). A file that cannot be parsed
    raises ``DataCorruptError``; another sample rate a ``ValueError``.
    """
    try:
        with wave.open(path, "rb") as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            frames = w.getnframes()
            raw = w.readframes(frames)
        if len(raw) != frames * width * channels:
            raise EOFError(f"{len(raw)} bytes of audio, header says {frames * width * channels}")
        if width == 2:
            audio = np.frombuffer(raw, "<i2")
        elif width == 4:
            audio = np.frombuffer(raw, "<i4").astype(np.float32) / 2.0**31
        elif width == 1:
            audio = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
        else:
            raise wave.Error(f"{8 * width}-bit samples")
        audio = audio.reshape(-1, channels)
    except wave.Error:
        # Float or extensible WAVs, which the wave module does not read.
        audio, rate = _read_wav_scipy(path)
    except (EOFError, OSError) as e:
        raise DataCorruptError(
            f"{path}: not a readable WAV file ({e}); delete the extracted folder and fetch "
            f"it again (--config.data.download=True)."
        ) from e
    if rate != sample_rate:
        raise ValueError(f"{path}: sample rate {rate} Hz; the recipe expects {sample_rate} Hz.")
    if audio.shape[1] == 1:
        return audio[:, 0]
    return audio.astype(np.float32).mean(axis=1)


def _read_wav_scipy(path: str):
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # unknown chunks
            rate, audio = wavfile.read(path)
    except (ValueError, OSError, EOFError) as e:
        raise DataCorruptError(
            f"{path}: not a readable WAV file ({e}); delete the extracted folder and fetch "
            f"it again (--config.data.download=True)."
        ) from e
    if audio.dtype.kind == "f":
        audio = audio.astype(np.float32)
    elif audio.dtype == np.int32:
        audio = audio.astype(np.float32) / 2.0**31
    elif audio.dtype == np.uint8:
        audio = (audio.astype(np.float32) - 128.0) / 128.0
    return audio.reshape(len(audio), -1), rate


def _featurize_files(raw_dir: str, names: list[str], recipe: dict) -> np.ndarray:
    """Features of the WAV files ``names`` (relative to ``raw_dir``), read in chunks.

    Long files (the background noise, about a minute each) are featurised one at a
    time, so the padded chunk stays the size of 1-s clips.
    """
    out = np.zeros((len(names), recipe["num_frames"], recipe["n_mels"]), np.float32)
    short = [i for i, p in enumerate(names) if not p.startswith(BACKGROUND + "/")]
    long = [i for i, p in enumerate(names) if p.startswith(BACKGROUND + "/")]
    for group, size in ((short, _FILE_CHUNK), (long, 1)):
        for a in range(0, len(group), size):
            idx = group[a : a + size]
            clips = [read_wav(os.path.join(raw_dir, names[i]), recipe["sample_rate"]) for i in idx]
            feats = compute_features(clips, recipe, chunk=size)
            bad = ~np.isfinite(feats).reshape(len(idx), -1).all(axis=1)
            if bad.any():
                files = ", ".join(os.path.join(raw_dir, names[i]) for i in np.asarray(idx)[bad])
                raise DataCorruptError(
                    f"gsc: non-finite audio in {int(bad.sum())} file(s): {files}; delete the "
                    f"extracted folder and fetch it again (--config.data.download=True)."
                )
            out[idx] = feats
    return out


def _official_not_found(config) -> DataNotFoundError:
    from tclif_jax.data import download

    return DataNotFoundError(
        f"gsc: the extracted Speech Commands v0.02 archive (a folder with testing_list.txt "
        f"and validation_list.txt) is not in {' or '.join(raw_candidates(config.dir))}, and "
        f"no feature cache was found in {cache_dir_of(config)}.\nTo provide it, set "
        f"--config.data.download=True (fetches {download.SPEECH_COMMANDS_URL}, 2.4 GB), or on "
        f"a machine with internet run\n{download.command('gsc', config.dir)}\nand copy the "
        f"folder here. (--config.data.split=tfds reads TFDS 'speech_commands' instead.)"
    )


# ----------------------------------------------------------------------------- TFDS split


def _tfds_not_found(config, err: Exception) -> DataNotFoundError:
    from tclif_jax.data import download

    where = config.dir or "the TFDS default (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    return DataNotFoundError(
        f"gsc: TFDS 'speech_commands' is not prepared in {where} and no feature cache was found "
        f"in {cache_dir_of(config)}. TFDS said: {err}\nTo provide it, set "
        f"--config.data.download=True, or on a machine with internet run\n"
        f"{download.command('gsc', config.dir, 'tfds')}\nand copy that folder here."
    )


def _read_split(config, tfds_split: str, limit: int):
    import tensorflow_datasets as tfds  # slow import; only when the cache misses

    try:
        ds = tfds.load(
            "speech_commands", split=tfds_split, data_dir=config.dir or None, download=False
        )
    except AssertionError as e:  # tfds's "could not find data in <dir>"
        raise _tfds_not_found(config, e) from e
    if limit:
        ds = ds.take(limit)
    clips, labels = [], []
    for ex in tfds.as_numpy(ds):
        clips.append(ex["audio"])
        labels.append(ex["label"])
    return clips, np.asarray(labels)


# ----------------------------------------------------------------------------- loading


def _read_cache(path: str, split: str):
    remedy = "delete it and it is recomputed at the next load"
    try:
        with np.load(path) as z:
            x, y = z["x"], z["y"]
    except Exception as e:  # noqa: BLE001 - a damaged cache, whatever numpy raises
        raise DataCorruptError(
            f"gsc: cannot read the feature cache {path} ({type(e).__name__}: {e}); {remedy}."
        ) from e
    check_finite(x, f"gsc feature cache {path}", remedy)
    check_labels(y, NUM_CLASSES, split, f"gsc feature cache {path}", remedy)
    return x, y.astype(np.int32)


def load_gsc(config) -> tuple[dict, dict]:
    """``({"train", "valid", "test"}: (x (N, 101, 40) float32, y int32), info)``, cached.

    ``config.split``: "official" or "tfds" (see the module docstring). Missing source
    files are fetched first when ``config.download`` is set.
    """
    source = config.split
    if source not in SPLIT_SOURCES:
        raise ValueError(f"gsc: data.split={source!r}; valid: {', '.join(SPLIT_SOURCES)}.")
    for k in ("train_limit", "test_limit"):
        take(config[k], 0)
    recipe = recipe_of(config)
    labels = OFFICIAL_LABELS if source == "official" else TFDS_LABELS
    splits = {}
    info = {"split": source, "labels": list(labels), "cache_files": {}, "cache_hits": []}
    todo = {}
    for split in SPLITS:
        limit = int(config.train_limit if split == "train" else config.test_limit)
        path = cache_path(config, split, limit)
        info["cache_files"][split] = path
        if config.use_cache and os.path.exists(path):
            splits[split] = _read_cache(path, split)
            info["cache_hits"].append(split)
            logging.info("gsc: %s features read from cache %s", split, path)
        else:
            todo[split] = (limit, path)
    if todo and source == "official":
        raw_dir = find_raw_dir(config.dir)
        if raw_dir is None and config.download:
            from tclif_jax.data import download

            raw_dir = download.fetch_speech_commands_raw(config.dir)
        if raw_dir is None:
            raise _official_not_found(config)
        info["raw_dir"] = raw_dir
        lists = official_split(raw_dir)
    elif todo and config.download:
        from tclif_jax.data import download

        download.fetch_speech_commands_tfds(config.dir)
    for split, (limit, path) in todo.items():
        if source == "official":
            names, y = lists[split]
            n = take(limit, len(names))
            names, y = names[:n], y[:n]
            x = _featurize_files(raw_dir, names, recipe)
        else:
            clips, y = _read_split(config, SPLITS[split], limit)
            where = os.path.join(config.dir or "~/tensorflow_datasets", "speech_commands")
            check_labels(
                y,
                NUM_CLASSES,
                split,
                f"gsc: TFDS 'speech_commands' in {where}",
                f"delete {where} and fetch it again (--config.data.download=True)",
            )
            x = compute_features(clips, recipe)
            check_finite(x, f"gsc {split} features of TFDS 'speech_commands'")
        y = y.astype(np.int32)
        splits[split] = (x, y)
        if config.use_cache:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".tmp.npz"
            np.savez(tmp, x=x, y=y, recipe=json.dumps(recipe), split=source)
            os.replace(tmp, path)
            logging.info("gsc: %s features (%d clips) cached in %s", split, len(y), path)
    splits = {s: splits[s] for s in SPLITS}
    info["sizes"] = {s: len(y) for s, (_, y) in splits.items()}
    info["silence_per_split"] = {
        s: int(np.sum(y == labels.index("_silence_"))) for s, (_, y) in splits.items()
    }
    return splits, info


def _check_recipe(config) -> None:
    nyquist = config.sample_rate / 2
    if not config.fmin < config.fmax <= nyquist:
        raise ValueError(
            f"data.fmin={config.fmin!r}, data.fmax={config.fmax!r} are not valid for 'gsc': "
            f"expected fmin < fmax <= sample_rate / 2 = {nyquist:g} Hz."
        )


SPECS = (
    DatasetSpec(
        "gsc",
        NUM_CLASSES,
        "n_mels",
        {
            "split": choice("official", SPLIT_SOURCES),  # see the module docstring
            # Fetch the raw archive (or TFDS's) when missing (needs internet).
            "download": flag(False),
            "cache_dir": text(""),  # "" -> <dir or default_data_dir()>/tclif_gsc_features
            "use_cache": flag(True),
            # The official code's features: 40 log-mels (40-4000 Hz) x 101 frames of 16 kHz
            # audio, 30 ms windows every 10 ms, power_to_db with an 80 dB floor.
            "sample_rate": integer(16000, low=1),
            "n_fft": integer(480, low=2),
            "hop_length": integer(160, low=1),
            "n_mels": integer(40, low=1),
            "num_frames": integer(101, low=1),
            "fmin": number(40.0, low=0.0),
            "fmax": number(4000.0, above=0.0),
            "top_db": number(80.0, above=0.0, none="no floor"),
            # librosa < 0.10's default, which the official code ran on.
            "pad_mode": choice("reflect", PAD_MODES),
        },
        lambda config, workdir=None: load_gsc(config),
        splits=tuple(SPLITS),
        check=_check_recipe,
    ),
)
