"""A second phase's lines in a pattern, and taking them out (tasks/excluded_regions.py): accuracy on MP patterns
with a substrate's lines added, with and without its regions excluded, beside the clean patterns.

Each held-out material of ``bench/accuracy.py``'s draw gets one measured-like Cu Kα pattern (the augmenter's
instrument and sample effects). The substrate is cassiterite (SnO2, FTO glass, under many thin films), rendered
with the same instrument, untextured, its strongest line scaled to a fraction of the film's strongest. Its regions
are the lines a user would see and type: those at >= ``VISIBLE`` of the film's strongest once scaled (the peak finder
reads nothing weaker), +- ``HALF_WIDTH_DEG``. The film alone with the same regions excluded shows what excluding
costs where the film has lines of its own. "Substrate FTO named" is ``--substrate FTO``: the regions are found in
each pattern (``tasks.excluded_regions.substrate_regions``), on the film alone as well (where there should be none).

    python bench/excluded_regions.py [--model bench/out/mp-model-refit.sgm] [--train 20000 --test 800]

``--model``: an XRD model saved by ``bench/accuracy.py --save-model`` (the default is the shipped pretrained one);
``--train/--test`` name the draw whose held-out materials are used (those the model never saw).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import held_out_draw, require_shared, write_section

HALF_WIDTH_DEG = 0.4
VISIBLE = 0.02  # of the strongest peak: tasks.features.MIN_PROMINENCE_FRACTION
STRENGTHS = (0.25, 1.0)  # substrate's strongest line / the film's strongest line
HEADLINE = ("sg_top1", "sg_top5", "crystal_system_accuracy", "extinction_group_accuracy")


def substrate_regions(two_theta_range_deg: tuple[float, float], wavelength_angstrom: float,
                      strength: float) -> list[tuple[float, float]]:
    """The substrate's lines in the scan that are visible at ``strength``, +- ``HALF_WIDTH_DEG``."""
    from tasks.excluded_regions import SUBSTRATES
    from tasks.xrd import PowderXRDSimulator

    sticks = PowderXRDSimulator(wavelength_angstrom, two_theta_range_deg).get_pattern(SUBSTRATES["FTO"]())
    strong = sticks.two_theta_deg[strength * sticks.intensity >= VISIBLE * sticks.intensity.max()]
    return [(float(t - HALF_WIDTH_DEG), float(t + HALF_WIDTH_DEG)) for t in strong]


def patterns(structures, seed: int = 21):
    """Per structure: the film's pattern and the substrate's, on the same grid and instrument (counts)."""
    from tasks.augment import MeasuredLikeAugmenter
    from tasks.datasets import D_MIN_ANGSTROM
    from tasks.excluded_regions import SUBSTRATES
    from tasks.xrd import compute_reflections

    augmenter = MeasuredLikeAugmenter()
    substrate_refl = compute_reflections(SUBSTRATES["FTO"](), D_MIN_ANGSTROM)
    out = []
    for i, structure in enumerate(structures):
        rng = np.random.default_rng([seed, i])
        sample = augmenter.sample(rng, wavelength="CuKa")
        film = augmenter.render(compute_reflections(structure, D_MIN_ANGSTROM), sample, rng)
        bare = dataclasses.replace(sample, texture_axis=None, background_fraction=0.0, hump_fraction=0.0,
                                   impurity_positions_deg=np.zeros(0), impurity_fractions=np.zeros(0),
                                   readout_noise_fraction=0.0)
        substrate = augmenter.render(substrate_refl, bare, rng)
        out.append((film, substrate.intensity - 0.01 * sample.peak_counts))  # without render's constant floor
    return out


def main() -> None:
    from tasks.evaluate import evaluate_probabilities
    from tasks.excluded_regions import exclude_regions, take_out
    from tasks.features import XRDPatternFeaturizer
    from tasks.models import SpaceGroupClassifier
    from tasks.patterns import PowderPattern
    from tasks.pretrained import shipped_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--test", type=int, default=800)
    args = parser.parse_args()
    require_shared("cgcnn_mp_crysxpp")
    started = time.perf_counter()
    if args.model:
        model, model_name = SpaceGroupClassifier.from_bytes(args.model.read_bytes()), f"MP-trained ({args.model})"
    else:
        shipped = {m.modality: m for m in shipped_models()}["xrd"]
        model, model_name = SpaceGroupClassifier.from_bytes(shipped.artifact), "pretrained (synthetic)"
    records, _, test_idx = held_out_draw(args.train, args.test)
    structures = [records[i][1] for i in test_idx]
    labels = np.array([records[i][2] for i in test_idx])
    rendered = patterns(structures)
    featurizer = XRDPatternFeaturizer()

    def score(pattern_list):
        return evaluate_probabilities(model.predict_proba(featurizer.featurize_many(pattern_list)), model.classes_,
                                      labels)

    def with_substrate(film, substrate, strength):
        scale = strength * np.ptp(film.intensity) / max(np.ptp(substrate), 1e-9)
        return PowderPattern(film.two_theta_deg, film.intensity + scale * np.clip(substrate, 0.0, None),
                             film.wavelength_angstrom, film.source)

    films = [f for f, _ in rendered]
    named = [take_out(f, substrates=["FTO"]) for f in films]
    rows = [("film alone", score(films)),
            (f"film alone, substrate FTO named (lines found in {np.mean([bool(r) for _, r in named]):.1%} of patterns)",
             score([p for p, _ in named]))]
    coverage = {}
    for strength in STRENGTHS:
        regions = [substrate_regions((f.two_theta_deg[0], f.two_theta_deg[-1]), f.wavelength_angstrom, strength)
                   for f in films]
        coverage[strength] = (np.mean([len(r) for r in regions]),
                              np.mean([sum(b - a for a, b in r) / np.ptp(f.two_theta_deg) for f, r in zip(films, regions)]))
        mixed = [with_substrate(f, s, strength) for f, s in rendered]
        rows.append((f"film + substrate at {strength:g}", score(mixed)))
        rows.append((f"film + substrate at {strength:g}, its visible lines' regions excluded",
                     score([exclude_regions(m, r) for m, r in zip(mixed, regions)])))
        rows.append(("film alone, the same regions excluded",
                     score([exclude_regions(f, r) for f, r in zip(films, regions)])))
        rows.append((f"film + substrate at {strength:g}, substrate FTO named (the lines each pattern shows)",
                     score([take_out(m, substrates=["FTO"])[0] for m in mixed])))

    lines = ["## A substrate's lines, and excluding them (bench/excluded_regions.py)", "",
             f"{len(films)} held-out MP materials (the test materials of the {args.train}/{args.test} draw of "
             "bench/accuracy.py), one measured-like Cu Kα pattern each; substrate: cassiterite SnO2 (FTO glass), its "
             "strongest line at the given fraction of the film's strongest; its regions: its lines that reach "
             f"{VISIBLE:.0%} of the film's strongest, ± {HALF_WIDTH_DEG}° ("
             + "; ".join(f"at {k:g}: {n:.1f} regions per pattern, {c:.1%} of the scan" for k, (n, c) in coverage.items())
             + f"). Model: {model_name}.", "",
             "| patterns | " + " | ".join(HEADLINE) + " |", "|---|" + "---|" * len(HEADLINE)]
    lines += [f"| {name} | " + " | ".join(f"{metrics[k]:.3f}" for k in HEADLINE) + " |" for name, metrics in rows]
    lines += ["", f"Total time {time.perf_counter() - started:.0f} s."]
    write_section("excluded_regions", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
