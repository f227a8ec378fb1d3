"""Malvern Panalytical XRDML files (the XML their diffractometers write): the 2θ scan and its wavelength.

An XRDML file holds one or more ``scan`` elements; each has ``dataPoints`` with a ``positions`` element per axis
(``axis="2Theta"``: ``startPosition``/``endPosition`` for equal steps, or ``listPositions``) and the counts as
``intensities`` (``counts`` in files before schema 1.1), one number per step. The wavelength is in
``usedWavelength``: ``kAlpha1``, ``kAlpha2`` and ``ratioKAlpha2KAlpha1``; where the intended line is Kα1 alone (a
Johansson monochromator) that is the wavelength, otherwise the Kα doublet's weighted mean, as ``CuKa`` is.

No maintained Python reader of the format exists (pypowder, the one package on PyPI, calls itself an attempt), so
this is written from the published schema. The XML is parsed with defusedxml: an upload is untrusted, and
entity expansion ("billion laughs") must not reach the parser.
"""

from __future__ import annotations

import numpy as np

from tasks.patterns import PatternError
from tasks.scans import kalpha_wavelength_angstrom, local_name


def _children(element, name: str) -> list:
    return [child for child in element if local_name(child.tag) == name]


def _numbers(text: str | None, what: str, source: str) -> np.ndarray:
    try:
        return np.array((text or "").split(), dtype=float)
    except ValueError:
        raise PatternError(f"{source}: the {what} of the XRDML file are not all numbers") from None


def _wavelength_angstrom(root) -> float | None:
    used = next((e for e in root.iter() if local_name(e.tag) == "usedWavelength"), None)
    if used is None:
        return None
    values = {local_name(child.tag): child.text for child in used}
    try:
        alpha1 = float(values["kAlpha1"])
    except (KeyError, TypeError, ValueError):
        return None
    if "alpha 1" in used.get("intended", "").lower().replace("-", " "):
        return alpha1
    try:
        alpha2, ratio = float(values["kAlpha2"]), float(values["ratioKAlpha2KAlpha1"])
    except (KeyError, TypeError, ValueError):
        return alpha1
    return kalpha_wavelength_angstrom(alpha1, alpha2, ratio)


def parse_xrdml(data: bytes, source: str = "") -> tuple[np.ndarray, np.ndarray, float | None]:
    """``(two_theta_deg, intensity, wavelength_angstrom or None)`` of the first 2θ scan in an XRDML file."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    source = source or "the XRDML file"
    try:
        root = fromstring(data)
    except (ParseError, DefusedXmlException) as exc:
        raise PatternError(f"{source} is not a readable XRDML file: {exc}") from None
    for points in (e for e in root.iter() if local_name(e.tag) == "dataPoints"):
        axes = [p for p in _children(points, "positions") if p.get("axis", "").lower() in ("2theta", "2theta-omega")]
        counts = _children(points, "intensities") or _children(points, "counts")
        if not axes or not counts:
            continue
        intensity = _numbers(counts[0].text, "intensities", source)
        axis = axes[0]
        listed = _children(axis, "listPositions")
        if listed:
            two_theta = _numbers(listed[0].text, "2θ positions", source)
        else:
            start, end = (_children(axis, name) for name in ("startPosition", "endPosition"))
            if not start or not end:
                raise PatternError(f"{source}: the XRDML 2θ axis has neither start/end positions nor a list")
            first, last = (_numbers(element[0].text, "2θ start and end", source) for element in (start, end))
            if len(first) != 1 or len(last) != 1:
                raise PatternError(f"{source}: the XRDML 2θ start and end positions are not single numbers")
            two_theta = np.linspace(first[0], last[0], len(intensity))
        if len(two_theta) != len(intensity):
            raise PatternError(f"{source}: the XRDML scan lists {len(two_theta)} 2θ positions but "
                               f"{len(intensity)} intensities")
        return two_theta, intensity, _wavelength_angstrom(root)
    raise PatternError(f"{source} holds no 2θ scan with intensities (an omega, phi or area scan is not a powder "
                       "pattern)")
