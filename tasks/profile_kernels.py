"""Compiled per-point work of the XRD featurizer: Q from 2θ, smoothing, background, local noise, binning.

Each function gives the values of a short numpy/scipy composition (named in its docstring; the tests compare them
on real patterns). Why by hand: on a 4,000-point pattern those compositions are a dozen library calls whose
fixed costs and temporaries dominated (0.56 ms of a 1.3 ms featurizer); one pass each in numba takes a fraction
of that (``bench/featurize_speed.py`` measures both in the same run).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def q_from_two_theta(two_theta_deg: np.ndarray, wavelength_angstrom: float) -> np.ndarray:
    """Q = 4π sin(θ) / λ (Å⁻¹) for each 2θ (degrees)."""
    out = np.empty(two_theta_deg.shape[0])
    half_radians = np.pi / 360.0
    scale = 4.0 * np.pi / wavelength_angstrom
    for i in range(two_theta_deg.shape[0]):
        out[i] = scale * np.sin(two_theta_deg[i] * half_radians)
    return out


@numba.njit(cache=True, nogil=True)
def _clamped(y, i):
    """``y[i]`` with the end values repeated beyond either end (scipy.ndimage's mode="nearest")."""
    if i < 0:
        return y[0]
    if i >= y.shape[0]:
        return y[y.shape[0] - 1]
    return y[i]


@numba.njit(cache=True, nogil=True)
def running_mean(y: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.uniform_filter1d(y, size, mode="nearest")``: the mean of ``y[i - size//2 : i - size//2 + size]``."""
    n = y.shape[0]
    out = np.empty(n)
    start = -(size // 2)
    total = 0.0
    for k in range(start, start + size):
        total += _clamped(y, k)
    for i in range(n):
        out[i] = total / size
        total += _clamped(y, i + start + size) - _clamped(y, i + start)
    return out


@numba.njit(cache=True, nogil=True)
def running_min(y: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.minimum_filter1d(y, size, mode="nearest")``, in O(n) with a monotonic queue of indices."""
    n = y.shape[0]
    start = -(size // 2)
    padded = np.empty(n + size - 1)  # padded[j] = y[j + start], the ends repeated
    for j in range(padded.shape[0]):
        padded[j] = _clamped(y, j + start)
    out = np.empty(n)
    queue = np.empty(padded.shape[0], dtype=np.int64)  # indices into padded, values rising
    head, tail = 0, 0
    for j in range(padded.shape[0]):
        value = padded[j]
        while tail > head and padded[queue[tail - 1]] >= value:
            tail -= 1
        queue[tail] = j
        tail += 1
        i = j - size + 1  # the output whose window ends at j
        if i >= 0:
            if queue[head] < i:
                head += 1
            out[i] = padded[queue[head]]
    return out


@numba.njit(cache=True, nogil=True)
def _select(values, k):
    """The k-th smallest of ``values`` (reordered in place): Hoare's quickselect, median-of-three pivots."""
    lo, hi = 0, values.shape[0] - 1
    while hi > lo:
        mid = (lo + hi) // 2
        a, b, c = values[lo], values[mid], values[hi]
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return values[k]
    return values[k]


@numba.njit(cache=True, nogil=True)
def _median_of(values):
    """The median of a copy of ``values`` (np.median's value)."""
    work = values.copy()
    k = work.shape[0] // 2
    upper = _select(work, k)
    if work.shape[0] % 2:
        return upper
    return (work[:k].max() + upper) / 2.0  # after selecting k, the k smallest precede it


@numba.njit(cache=True, nogil=True)
def block_noise(y: np.ndarray, block: int) -> np.ndarray:
    """Per point, 1.4826 x median |Δy| / sqrt(2) over each block of ``block`` successive differences (a robust
    white-noise sigma); points past the last whole block take its value, and with no whole block all take the
    value of every difference."""
    n = y.shape[0]
    out = np.empty(n)
    if n < 2:
        out[:] = 0.0
        return out
    step = np.abs(y[1:] - y[:-1])
    n_blocks = step.shape[0] // block
    scale = 1.4826 / np.sqrt(2.0)
    if n_blocks == 0:
        out[:] = _median_of(step) * 1.4826 / np.sqrt(2.0)  # local_noise's order of operations, to the last bit
        return out
    sigma = 0.0
    for b in range(n_blocks):
        sigma = _median_of(step[b * block:(b + 1) * block]) * scale
        out[b * block:(b + 1) * block] = sigma
    out[n_blocks * block:] = sigma
    return out


@numba.njit(cache=True, nogil=True)
def max_per_bin(q: np.ndarray, signal: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The largest ``signal`` whose ``q`` (ascending) lies in each bin ``(edges[b], edges[b + 1]]`` (the bins of
    ``np.searchsorted(edges, q) - 1``); ``-inf`` for a bin without a point."""
    n_bins = edges.shape[0] - 1
    out = np.full(n_bins, -np.inf)
    b = -1  # the bin of the current point: edges[b] < q <= edges[b + 1]
    for i in range(q.shape[0]):
        while b < n_bins and q[i] > edges[b + 1]:
            b += 1
        if b >= n_bins:
            break
        if b >= 0 and signal[i] > out[b]:
            out[b] = signal[i]
    return out


@numba.njit(cache=True, nogil=True)
def subtract_background(two_theta_deg: np.ndarray, intensity: np.ndarray, wavelength_angstrom: float,
                        background_window_q: float, noise_block: int):
    """``tasks.features.background_subtracted_reference`` in one compiled pass: returns Q (Å⁻¹), the signal above a
    smoothed running-minimum background scaled so max = 1, the median Q step, and the local noise sigma of the
    3-point-smoothed signal on the same scale."""
    q = q_from_two_theta(two_theta_deg, wavelength_angstrom)
    step_q = _median_of(q[1:] - q[:-1])
    window = max(3, int(np.rint(background_window_q / max(step_q, 1e-6))))
    smooth = running_mean(intensity, 3)
    background = running_mean(running_min(smooth, window), window)
    signal = np.empty(q.shape[0])
    peak = 0.0
    for i in range(q.shape[0]):
        signal[i] = max(smooth[i] - background[i], 0.0)
        peak = max(peak, signal[i])
    noise = block_noise(intensity, noise_block) / np.sqrt(3.0)
    if peak > 0:
        signal /= peak
        noise /= peak
    return q, signal, step_q, noise


@numba.njit(cache=True, nogil=True)
def find_peak_indices(x: np.ndarray, min_height: np.ndarray, min_prominence: np.ndarray, distance: int,
                      wlen: int) -> np.ndarray:
    """``scipy.signal.find_peaks(x, height=min_height, prominence=min_prominence, distance=distance, wlen=wlen)[0]``
    for per-point thresholds and integer ``distance >= 1``, ``wlen >= 2``, with scipy's order of selection:
    local maxima (a flat top counts once, at its middle), then height, then distance (higher peaks first), then
    prominence measured within ``wlen // 2`` points either side."""
    n = x.shape[0]
    candidates = np.empty(n // 2 + 1, dtype=np.int64)
    m = 0
    i = 1
    while i < n - 1:
        if x[i - 1] < x[i]:
            ahead = i + 1
            while ahead < n - 1 and x[ahead] == x[i]:
                ahead += 1
            if x[ahead] < x[i]:
                middle = (i + ahead - 1) // 2
                if x[middle] >= min_height[middle]:
                    candidates[m] = middle
                    m += 1
                i = ahead
        i += 1
    peaks = candidates[:m]
    keep = np.ones(m, dtype=np.bool_)
    if distance > 1:
        by_height = np.argsort(x[peaks], kind="mergesort")
        for r in range(m - 1, -1, -1):
            j = by_height[r]
            if not keep[j]:
                continue
            k = j - 1
            while k >= 0 and peaks[j] - peaks[k] < distance:
                keep[k] = False
                k -= 1
            k = j + 1
            while k < m and peaks[k] - peaks[j] < distance:
                keep[k] = False
                k += 1
    out = np.empty(m, dtype=np.int64)
    n_out = 0
    for r in range(m):
        if not keep[r]:
            continue
        peak = peaks[r]
        lo, hi = max(peak - wlen // 2, 0), min(peak + wlen // 2, n - 1)
        left_min = x[peak]
        k = peak
        while k >= lo and x[k] <= x[peak]:
            left_min = min(left_min, x[k])
            k -= 1
        right_min = x[peak]
        k = peak
        while k <= hi and x[k] <= x[peak]:
            right_min = min(right_min, x[k])
            k += 1
        if x[peak] - max(left_min, right_min) >= min_prominence[peak]:
            out[n_out] = peak
            n_out += 1
    return out[:n_out]


@numba.njit(cache=True, nogil=True)
def refine_peaks(q: np.ndarray, signal: np.ndarray, peaks: np.ndarray):
    """Sub-step positions (Q, Å⁻¹) of interior ``peaks`` from the parabola through each peak and its two
    neighbours (offset clipped to half a step), and their heights relative to the highest; end points dropped."""
    q_peak = np.empty(peaks.shape[0])
    height = np.empty(peaks.shape[0])
    n = 0
    for p in peaks:
        if p <= 0 or p >= signal.shape[0] - 1:
            continue
        left, mid, right = signal[p - 1], signal[p], signal[p + 1]
        denom = left - 2.0 * mid + right
        offset = 0.5 * (left - right) / denom if abs(denom) > 1e-12 else 0.0
        offset = min(max(offset, -0.5), 0.5)
        base = p if offset >= 0 else p - 1  # interpolate within the step that holds the refined position
        q_peak[n] = q[base] + (offset + p - base) * (q[base + 1] - q[base])
        height[n] = mid
        n += 1
    top = height[:n].max() if n else 1.0
    return q_peak[:n], height[:n] / top
