"""Parity bounds shared by several test files, each derived from float32 rounding.

A bound is the rounding that the computation can accumulate, scaled to the magnitude of the
values compared, so that it holds on any CPU (vector width, thread count, BLAS/FFT kernels) and
still fails for a real mistake. Every use says what it compares and the worst value measured
under ATEN_CPU_CAPABILITY=default, avx2 and avx512 with 1 and 2 torch threads (see the README),
and once more with MKL_ENABLE_INSTRUCTIONS=AVX2 ("MKL AVX2"): torch's FFTs and matrix products are
MKL's, which picks its kernels by itself and ignores ATEN_CPU_CAPABILITY.
"""

import torch

EPS = torch.finfo(torch.float32).eps  # 1.19e-7: one float32 rounding, relative to the value

# Log spectra. An fp32 FFT of n points gets each bin right to ~eps * log2(n) of the frame's
# loudest bins, not of the bin itself, so a band 60 dB (1000x in magnitude) below its frame's
# peak is off by ~1000 * eps * log2(n) relative, and a log turns that into the same absolute
# error. Kaldi fbank takes the log of power (twice the relative error of the magnitude), n = 512:
# 2 * 1000 * 1.19e-7 * 9 = 2.1e-3. The matcha mel takes the log of magnitude, n = 1920:
# 1000 * 1.19e-7 * 11 = 1.3e-3. Bugs the bounds still catch (measured on the goldens): a
# symmetric instead of periodic Hann window moves the matcha mel by 1.5e-2, a 0.1% gain error by
# 1.1e-3 (matcha) and 2.3e-3 (Kaldi); a wrong window type, fmin or pre-emphasis by 0.7 to 7.
LOG_POWER = 2e-3
LOG_MAGNITUDE = 1e-3
# Whisper's log-mel is log10(power) / 4: the same power error divided by 4 ln 10.
WHISPER_LOG_MEL = LOG_POWER / (4 * 2.302585)  # 2.2e-4

# HiFT. Its source sums sines whose phase, accumulated sample by sample, reaches 2.4e4 rad for the
# top harmonic in the goldens' flow case; one fp32 ulp there is 2e-3 rad, i.e. 2e-4 at the 0.1 sine
# amplitude, and cumsum/sin kernels differ by about an ulp between platforms. The generator's ~20
# convolutions (values up to 2, waveform below 1) pass that on and add their own rounding. The bound
# allows 5 ulps of phase, 1e-3 of full scale (-60 dB); a wrong harmonic count, sample rate, voicing
# threshold, upsampling or a missing resblock moves the source or waveform by ~0.1.
HIFT_TOL = 1e-3
