"""Google Speech Commands v2, 12 classes (TFDS ``speech_commands``), as log-mel sequences.

Inputs ``(N, 101, 40)`` float32: 101 frames of 10 ms (hop 160 at 16 kHz) x 40 mel bands,
z-scored per utterance. Labels follow TFDS: 0..9 = down, go, left, no, off, on, right,
stop, up, yes; 10 = _silence_; 11 = _unknown_.

Recipe (official code, librosa < 0.10): int16 audio / 32768; STFT n_fft 480 (Hann,
centred, reflect padding, librosa's old default), |X| ** 1.0; 40 Slaney mel bands,
40..4000 Hz; ``power_to_db(ref=max)`` (10 log10 of a magnitude, amin 1e-10, top_db 80);
pad with 0 (after dB) or crop to 101 frames; z-score with torch's unbiased std (ddof 1),
skipped when std == 0. Computed once per split and cached as .npz.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from absl import logging

from tclif_jax.data._common import DataNotFoundError, default_data_dir, take

__all__ = ["LABELS", "RECIPE_FIELDS", "compute_features", "mel_basis", "load_gsc"]

LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes",
          "_silence_", "_unknown_")
RECIPE_FIELDS = ("sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "num_frames",
                 "pad_mode", "top_db")
SPLITS = {"train": "train", "valid": "validation", "test": "test"}
# Bump when the feature code changes meaning, so old caches are not reused.
FEATURE_VERSION = 1


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
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(recipe["fmin"]), _hz_to_mel(recipe["fmax"]),
                                   n_mels + 2))
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
        batch = clips[start:start + chunk]
        audio = [np.asarray(c).reshape(-1) for c in batch]
        audio = [a.astype(np.float32) / 32768.0 if a.dtype.kind in "iu" else a.astype(np.float32)
                 for a in audio]
        n_frames = np.array([1 + len(a) // hop for a in audio])
        padded_len = max(len(a) for a in audio) + 2 * (n_fft // 2)
        padded = np.zeros((len(audio), padded_len), np.float32)
        for i, a in enumerate(audio):
            # numpy's reflect needs >= 2 samples; shorter clips get zeros like librosa's "constant".
            mode = recipe["pad_mode"] if len(a) >= 2 else "constant"
            p = np.pad(a, n_fft // 2, mode=mode)
            padded[i, :len(p)] = p
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop]
        frames = frames[:, :n_frames.max()]
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
            db = np.concatenate([db, np.zeros((len(db), frames_out - db.shape[1], db.shape[2]),
                                              db.dtype)], axis=1)
        db = db[:, :frames_out].astype(np.float64)
        # Per utterance, over all frames including the padding; unbiased std as torch's.
        mean = db.mean(axis=(1, 2), keepdims=True)
        std = db.std(axis=(1, 2), keepdims=True, ddof=1)
        db = np.where(std != 0, (db - mean) / np.where(std != 0, std, 1.0), db)
        out[start:start + len(batch)] = db
    return out


def recipe_of(config) -> dict:
    return {k: config[k] for k in RECIPE_FIELDS}


def cache_dir_of(config) -> str:
    return config.cache_dir or os.path.join(config.dir or default_data_dir(), "tclif_gsc_features")


def cache_path(config, split: str, limit: int) -> str:
    key = json.dumps({"dataset": "speech_commands", "split": split, "limit": int(limit),
                      "version": FEATURE_VERSION, **recipe_of(config)}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return os.path.join(cache_dir_of(config), f"gsc_{split}_{limit or 'all'}_{digest}.npz")


def _not_found(config, err: Exception) -> DataNotFoundError:
    where = config.dir or "the TFDS default (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    return DataNotFoundError(
        f"gsc: TFDS 'speech_commands' is not prepared in {where} and no feature cache was found "
        f"in {cache_dir_of(config)}. TFDS said: {err}\nTo provide it, on a machine with "
        f"internet run python -c \"import tensorflow_datasets as tfds; "
        f"tfds.load('speech_commands', data_dir='{config.dir or '~/tensorflow_datasets'}', "
        f"download=True)\" and copy that folder here (or set config.download=True there).")


def _read_split(config, tfds_split: str, limit: int):
    import tensorflow_datasets as tfds  # slow import; only when the cache misses

    try:
        ds = tfds.load("speech_commands", split=tfds_split, data_dir=config.dir or None,
                       download=bool(config.download))
    except AssertionError as e:  # tfds's "could not find data in <dir>"
        raise _not_found(config, e) from e
    if limit:
        ds = ds.take(limit)
    clips, labels = [], []
    for ex in tfds.as_numpy(ds):
        clips.append(ex["audio"])
        labels.append(ex["label"])
    return clips, np.asarray(labels, np.int32)


def load_gsc(config) -> tuple[dict, dict]:
    """``({"train", "valid", "test"}: (x (N, 101, 40) float32, y int32), info)``, cached."""
    for k in ("train_limit", "test_limit"):
        take(config[k], 0)
    recipe = recipe_of(config)
    splits, info = {}, {"cache_files": {}, "cache_hits": []}
    for split, tfds_split in SPLITS.items():
        limit = int(config.train_limit if split == "train" else config.test_limit)
        path = cache_path(config, split, limit)
        info["cache_files"][split] = path
        if config.use_cache and os.path.exists(path):
            with np.load(path) as z:
                splits[split] = (z["x"], z["y"].astype(np.int32))
            info["cache_hits"].append(split)
            logging.info("gsc: %s features read from cache %s", split, path)
            continue
        clips, y = _read_split(config, tfds_split, limit)
        x = compute_features(clips, recipe)
        splits[split] = (x, y)
        if config.use_cache:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".tmp.npz"
            np.savez(tmp, x=x, y=y, recipe=json.dumps(recipe))
            os.replace(tmp, path)
            logging.info("gsc: %s features (%d clips) cached in %s", split, len(y), path)
    return splits, info
