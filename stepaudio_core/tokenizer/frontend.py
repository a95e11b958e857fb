"""The Paraformer front end (FunASR ``WavFrontendOnline``): Kaldi fbank, LFR(7, 6), CMVN.

Per 10 ms frame an 80-bin Kaldi fbank of the waveform scaled to int16 range (hamming window,
25 ms); every 6th frame, 7 consecutive frames are stacked into one 560-d vector (the first
frame is repeated 3 times in front, the last one repeated at the end), then shifted and scaled
by the vectors of ``am.mvn``. Dither is always off: the reference's default dither of 1.0 adds
unseeded noise, which makes its codes differ from run to run.

The reference feeds the waveform in 240 ms chunks and carries left-over samples and fbank rows
between calls (``FrontendStream``). Fbank frames are independent of each other, so the result
equals one offline pass over the whole clip, except that the stream drops the last LFR frame
when the final chunk holds 400..879 samples (it yields fewer than 7 new rows);
``frame_count`` gives the streamed length and ``offline`` uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelFileError
from ..features import kaldi_fbank

CHUNK_SAMPLES = 3840  # 240 ms of 16 kHz audio per streaming call (chunk_size[1] * 960)


@dataclass(frozen=True)
class FrontendConfig:
    """``frontend_conf`` of the Paraformer's config.yaml (the released values are the defaults)."""

    fs: int = 16000
    window: str = "hamming"
    n_mels: int = 80
    frame_length: int = 25
    frame_shift: int = 10
    lfr_m: int = 7
    lfr_n: int = 6

    @property
    def frame_samples(self) -> int:
        return self.fs * self.frame_length // 1000

    @property
    def shift_samples(self) -> int:
        return self.fs * self.frame_shift // 1000

    @property
    def output_size(self) -> int:
        return self.n_mels * self.lfr_m


def read_cmvn(path: str | Path, dim: int) -> torch.Tensor:
    """(2, dim) float32 [shift; scale] from a Kaldi-nnet text ``am.mvn`` (``<AddShift>``, ``<Rescale>``)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ModelFileError(f"cannot read the CMVN file {path} ({e}). Download the Paraformer folder again.") from None
    found = {}
    for tag, nxt in zip(lines, lines[1:]):
        words, values = tag.split(), nxt.split()
        # The vector follows '<LearnRateCoef> 0 [' on the line after the tag and ends at ']'.
        if words and words[0] in ("<AddShift>", "<Rescale>") and values[:1] == ["<LearnRateCoef>"]:
            try:
                found[words[0]] = [float(v) for v in values[3:-1]]
            except ValueError:
                found[words[0]] = []
    rows = [found.get("<AddShift>", []), found.get("<Rescale>", [])]
    if any(len(r) != dim for r in rows):
        raise ModelFileError(
            f"{path} does not hold <AddShift> and <Rescale> vectors of {dim} values (found "
            f"{[len(r) for r in rows]}). Download am.mvn of the Paraformer model again."
        )
    return torch.tensor(rows, dtype=torch.float32)


def frame_count(n_samples: int, cfg: FrontendConfig = FrontendConfig()) -> int:
    """Number of LFR frames the streamed front end emits for a clip of ``n_samples``."""
    size, shift = cfg.frame_samples, cfg.shift_samples
    rows = (n_samples - size) // shift + 1 if n_samples >= size else 0
    frames = -(-rows // cfg.lfr_n)
    # A final chunk whose rows cannot fill one LFR frame is buffered and never flushed, losing
    # the frame that offline padding would make. Its rows plus those in front (3 padding rows
    # at the start; later 1 cached row and 2 rows' worth of left-over samples) must reach lfr_m.
    last = n_samples % CHUNK_SAMPLES
    rows_in_last = (last - size) // shift + 1 if last >= size else 0
    if 0 < rows_in_last and rows_in_last + (cfg.lfr_m - 1) // 2 < cfg.lfr_m:
        frames -= 1
    return max(frames, 0)


class Frontend(nn.Module):
    """Fbank + LFR + CMVN with the shift and scale of ``am.mvn`` as (non-persistent) buffers."""

    def __init__(self, cfg: FrontendConfig, cmvn: torch.Tensor):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("cmvn", cmvn.float(), persistent=False)

    def fbank(self, wav: torch.Tensor) -> torch.Tensor:
        """(N,) in [-1, 1] -> (frames, n_mels) log-mel; frames start every shift at sample 0."""
        cfg = self.cfg
        return kaldi_fbank(
            wav * (1 << 15),
            sample_frequency=float(cfg.fs),
            num_mel_bins=cfg.n_mels,
            frame_length=float(cfg.frame_length),
            frame_shift=float(cfg.frame_shift),
            dither=0.0,
            energy_floor=0.0,
            window_type=cfg.window,
        )

    def lfr(self, rows: torch.Tensor, final: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``apply_lfr``: stacked frames (T, m * n_mels) and the rows to keep for the next call.

        ``rows`` already holds the left context. A frame that lacks rows is padded with the
        last row when ``final``, otherwise it and everything after waits for the next call.
        """
        m, n = self.cfg.lfr_m, self.cfg.lfr_n
        total = rows.shape[0]
        wanted = max(math.ceil((total - (m - 1) // 2) / n), 0)
        complete = min(wanted, (total - m) // n + 1) if total >= m else 0
        count = wanted if final else complete
        if count == 0:
            return rows.new_zeros(0, m * rows.shape[1]), rows[:0] if final else rows
        if count > complete:
            rows = torch.cat([rows, rows[-1:].expand(n * (count - 1) + m - total, -1)])
        frames = rows.unfold(0, m, n)[:count].transpose(1, 2).reshape(count, -1)
        keep = rows[min(total - 1, count * n) : total] if not final else rows[:0]
        return frames, keep

    def cmvn_apply(self, frames: torch.Tensor) -> torch.Tensor:
        return (frames + self.cmvn[0]) * self.cmvn[1]

    def offline(self, wav: torch.Tensor) -> torch.Tensor:
        """All CMVN-ed LFR frames of a clip at once (T, 560), T = ``frame_count`` (what the stream yields)."""
        count = frame_count(wav.shape[-1], self.cfg)
        rows = self.fbank(wav)
        if count == 0:
            return rows.new_zeros(0, self.cfg.output_size)
        rows = torch.cat([rows[:1].expand((self.cfg.lfr_m - 1) // 2, -1), rows])
        frames, _ = self.lfr(rows, final=True)
        return self.cmvn_apply(frames[:count])

    def stream(self) -> FrontendStream:
        return FrontendStream(self)


class FrontendStream:
    """One utterance through ``WavFrontendOnline`` chunk by chunk: left-over samples and LFR rows carry over."""

    def __init__(self, frontend: Frontend):
        self.frontend = frontend
        self.samples: torch.Tensor | None = None
        self.rows: torch.Tensor | None = None

    def __call__(self, chunk: torch.Tensor, final: bool) -> torch.Tensor:
        """(n,) samples -> (T, 560) frames, T possibly 0."""
        fe, cfg = self.frontend, self.frontend.cfg
        x = chunk if self.samples is None else torch.cat([self.samples, chunk])
        size, shift = cfg.frame_samples, cfg.shift_samples
        n_rows = (x.shape[0] - size) // shift + 1 if x.shape[0] >= size else 0
        self.samples = x[n_rows * shift :]
        empty = x.new_zeros(0, cfg.output_size)
        if n_rows:
            new = fe.fbank(x[: (n_rows - 1) * shift + size])
            if self.rows is None:
                self.rows = new[:1].expand((cfg.lfr_m - 1) // 2, -1)
            rows = torch.cat([self.rows, new])
            if rows.shape[0] < cfg.lfr_m:
                # Too few rows for one frame: buffer them (even on the final call, as the reference does).
                self.rows = rows
                return empty
        elif final and self.rows is not None:
            rows = self.rows
        else:
            return empty
        frames, self.rows = fe.lfr(rows, final)
        return fe.cmvn_apply(frames)
