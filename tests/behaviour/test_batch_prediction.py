"""Large pattern batches: featurised in worker processes, the same answers as in one process."""

import re
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info

from tasks.features import XRD_FEATURE_VERSION
from tasks.models import SpaceGroupClassifier
from tasks.predict import PARALLEL_MIN_PATTERNS, LoadedModel, Predictor
from tasks.pretrained import shipped_models
from tasks.readers import read_pattern

EXAMPLES = Path(__file__).resolve().parents[2] / "tasks" / "examples"


def test_worker_processes_give_the_same_answers():
    shipped = {m.name: m for m in shipped_models()}["xrd_default"]
    model = LoadedModel(SpaceGroupClassifier.from_bytes(shipped.artifact), None, "xrd_default", XRD_FEATURE_VERSION)
    base = [read_pattern(p) for p in sorted(EXAMPLES.glob("*.xy"))]
    rng = np.random.default_rng(0)
    # distinct patterns (noise), so a mix-up of rows between workers would show
    patterns = [type(p)(p.two_theta_deg, p.intensity * rng.uniform(0.5, 1.5, len(p.intensity)), p.wavelength_angstrom,
                        p.source) for p in (base * 60)[:PARALLEL_MIN_PATTERNS + 7]]
    names = [f"p{i}" for i in range(len(patterns))]
    serial = Predictor(model, n_jobs=1).predict_patterns(patterns, names)
    parallel_predictor = Predictor(model, n_jobs=2)
    threads_before = _thread_pools()
    try:
        parallel = parallel_predictor.predict_patterns(patterns, names)
        assert parallel_predictor._pool is not None  # the worker processes were really used
    finally:
        parallel_predictor.close()
    assert _thread_pools() == threads_before  # BLAS held to one thread during the batch only
    assert [r["input"] for r in parallel] == names
    for a, b in zip(serial, parallel):
        assert a["top_k"] == b["top_k"]


def _thread_pools() -> list[tuple[str, int]]:
    return sorted((pool["filepath"], pool["num_threads"]) for pool in threadpool_info())


def test_a_pattern_without_peaks_gets_an_error_and_the_batch_goes_on():
    from tasks.patterns import PowderPattern

    shipped = {m.name: m for m in shipped_models()}["xrd_default"]
    model = LoadedModel(SpaceGroupClassifier.from_bytes(shipped.artifact), None, "xrd_default", XRD_FEATURE_VERSION)
    silicon = read_pattern(EXAMPLES / "Si_diamond_CuKa.xy")
    two_theta = np.linspace(10, 80, 3501)
    background = PowderPattern(two_theta, 100 + np.random.default_rng(1).normal(0, 3, len(two_theta)), 1.54184, "bg")
    results = Predictor(model).predict_patterns([silicon, background, silicon], ["si", "background", "si again"])
    assert [r["input"] for r in results] == ["si", "background", "si again"]
    assert "no diffraction peaks stand out of the noise in background" in results[1]["error"]
    assert "space_group" not in results[1]
    assert results[0]["space_group"] == results[2]["space_group"] and results[0]["crystal_system"] == "cubic"


def test_a_glass_hump_is_named_but_crystals_on_glass_and_broad_film_peaks_are_answered():
    from tasks.patterns import PowderPattern

    shipped = {m.name: m for m in shipped_models()}["xrd_default"]
    model = LoadedModel(SpaceGroupClassifier.from_bytes(shipped.artifact), None, "xrd_default", XRD_FEATURE_VERSION)
    silicon = read_pattern(EXAMPLES / "Si_diamond_CuKa.xy")
    two_theta = silicon.two_theta_deg
    hump = 400 * np.exp(-(((two_theta - 22) / 4) ** 2))  # FWHM 6.7°: the scattering of a glass
    noise = np.random.default_rng(2).normal(0, 3, len(two_theta))
    glass = PowderPattern(two_theta, 100 + hump + noise, silicon.wavelength_angstrom, "glass")
    on_glass = PowderPattern(two_theta, silicon.intensity + 0.2 * silicon.intensity.max() / 400 * hump,
                             silicon.wavelength_angstrom, "si on glass")
    film_lines = sum(np.exp(-(((two_theta - c) / 1.0) ** 2)) * h for c, h in ((14.1, 400), (28.4, 250), (31.8, 150)))
    film = PowderPattern(two_theta, 50 + film_lines + noise, silicon.wavelength_angstrom, "broad film")  # FWHM 1.7°
    glass_answer, on_glass_answer, film_answer = Predictor(model).predict_patterns(
        [glass, on_glass, film], ["glass", "si on glass", "broad film"])
    assert re.search(r"broad hump \(6\.[5-8]° wide at half height, near 2θ = 22°\)", glass_answer["error"])
    assert "amorphous" in glass_answer["error"]
    assert on_glass_answer["crystal_system"] == "cubic"
    assert "error" not in film_answer


def test_a_directory_with_a_multi_phase_cif_gets_one_answer_per_phase(tmp_path):
    from tests.science.test_readers import multi_phase_cif

    shipped = {m.name: m for m in shipped_models()}["xrd_default"]
    model = LoadedModel(SpaceGroupClassifier.from_bytes(shipped.artifact), None, "xrd_default", XRD_FEATURE_VERSION)
    multi_phase_cif(tmp_path)
    (tmp_path / "si.xy").write_bytes((EXAMPLES / "Si_diamond_CuKa.xy").read_bytes())
    answers = {Path(r["input"]).name: r for r in Predictor(model).predict_paths([tmp_path])}
    assert set(answers) == {"phases.cif#NaCl", "phases.cif#KCl", "phases.cif#broken", "si.xy"}
    assert answers["phases.cif#NaCl"]["spglib"]["space_group_number"] == 225
    assert answers["phases.cif#KCl"]["space_group"]["number"] == 225
    assert answers["phases.cif#broken"]["modality"] == "structure" and "error" in answers["phases.cif#broken"]
    assert answers["si.xy"]["modality"] == "xrd" and "space_group" in answers["si.xy"]
