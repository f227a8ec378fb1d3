"""Readers: any reasonable pattern file reads back exactly; every kind of bad input is named."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.patterns import PatternError, validate_pattern
from tasks.readers import (FormulaError, StructureError, parse_formula, parse_pattern_text, read_pattern,
                           read_structure, structure_from_text)
from tests.conftest import shared_path

EXAMPLES = Path(__file__).resolve().parents[2] / "tasks" / "examples"

NACL_CIF = """data_NaCl
_symmetry_space_group_name_H-M 'F m -3 m'
_cell_length_a 5.64
_cell_length_b 5.64
_cell_length_c 5.64
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_Int_Tables_number 225
loop_
_symmetry_equiv_pos_as_xyz
x,y,z
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na Na 0 0 0
Cl Cl 0.5 0.5 0.5
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


patterns = st.integers(min_value=50, max_value=400).flatmap(
    lambda n: st.tuples(
        st.floats(min_value=1.0, max_value=20.0),
        st.floats(min_value=0.005, max_value=0.1),
        st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=patterns, sep=st.sampled_from([" ", "\t", ",", ";", "  "]), esd=st.booleans(),
       header=st.sampled_from(["", "# 2theta intensity\n", "2theta,intensity\n", "##NAMES=test\n##WAVELENGTH=1.5406\n"]))
def test_any_written_pattern_reads_back(tmp_path, pattern, sep, esd, header):
    start, step, values = pattern
    y = np.array(values)
    if not np.any(y > 0):
        y[0] = 1.0
    x = start + step * np.arange(len(y))
    lines = [sep.join([f"{a:.6f}", f"{b:.6f}"] + ([f"{np.sqrt(b):.4f}"] if esd else [])) for a, b in zip(x, y)]
    path = write(tmp_path, "p.xy", header + "\n".join(lines) + "\n")
    p = read_pattern(path)
    assert np.allclose(p.two_theta_deg, np.round(x, 6))
    assert np.allclose(p.intensity, np.round(y, 6))
    expected_lambda = 1.5406 if "WAVELENGTH" in header else 1.54184
    assert p.wavelength_angstrom == pytest.approx(expected_lambda, abs=1e-4)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes_the_parser(text):
    try:
        x, y, *_ = parse_pattern_text(text)
        validate_pattern(x, y, 1.54)
    except PatternError as exc:
        assert str(exc)


def test_start_step_stop_format(tmp_path):
    path = write(tmp_path, "p.dat", "10 0.02 12\n" + "\n".join(str(i % 7 + 1) for i in range(101)))
    p = read_pattern(path)
    assert p.two_theta_deg[0] == 10 and p.two_theta_deg[-1] == pytest.approx(12.0)


@pytest.mark.parametrize("body,message", [
    ("", "no numeric data"),
    ("\n".join(f"{10 + i * 0.1} {i}" for i in range(20)), "only 20 points"),
    ("10 5\n", "only 1 point in"),
    ("\n".join(f"{10 + i * 0.1} {'nan' if i == 30 else i}" for i in range(100)), "NaN"),
    ("\n".join(f"{10 + (i if i != 50 else 49) * 0.1:.1f} {i}" for i in range(100)), "appears twice"),
    ("\n".join(f"{20 - i * 0.1} {i}" for i in range(100)), r"falls throughout .* d-spacings, name it 'd \(Å\)'"),
    ("\n".join(f"{10 + (i if i != 50 else 40) * 0.1:.1f} {i}" for i in range(100)),
     "not increasing.*14.9° is followed by 14°"),
    ("\n".join(f"{10 + i * 0.1} {-i - 5}" for i in range(100)), "negative"),
    ("\n".join(f"{10 + i * 0.1} 0" for i in range(100)), "all intensities are zero"),
    ("\n".join(f"{100 + i} {i + 1}" for i in range(100)), "180"),
    ("\n".join(f"{10 + i * 0.1} {i} 1 2" for i in range(100)), "columns"),
    ("\n".join(f"{10 + i * 0.1} {i}" if i != 7 else "10.71260" for i in range(100)), "line 8 .*separator"),
    ("\n".join(f"{10 + i * 0.1}" for i in range(100)), "one column"),
])
def test_bad_patterns_are_named(tmp_path, body, message):
    with pytest.raises(PatternError, match=message):
        read_pattern(write(tmp_path, "bad.xy", body))


def test_intensities_run_into_two_theta_are_split_back_when_unambiguous(tmp_path):
    two_theta = [round(10 + 0.0496 * i, 4) for i in range(80)]
    counts = [100 + (i % 7) for i in range(80)]
    counts[40], counts[41] = 10228, 13906  # six digits: they run into the 2θ field
    lines = [f"{t:.4f}".rstrip("0") for t in two_theta]
    body = "".join(f"{t} {c}\n" if c < 1e4 else f"{t}{c}\n" for t, c in zip(lines, counts))
    assert f"{lines[40]}{counts[40]}" in body
    p = read_pattern(write(tmp_path, "fixed.xy", body))
    np.testing.assert_allclose(p.two_theta_deg, two_theta)
    np.testing.assert_allclose(p.intensity, counts)


def test_a_line_missing_its_intensity_is_not_repaired(tmp_path):
    rows = [f"{10 + 0.05 * i:.2f} {100 + i}" for i in range(80)]
    rows[30] = f"{10 + 0.05 * 30:.2f}"  # the value is simply missing: no split fits the grid
    with pytest.raises(PatternError, match=r"line 31 .* has 1 column\(s\) \('11.50'\).*separator missing"):
        read_pattern(write(tmp_path, "gap.xy", "\n".join(rows)))


def test_missing_pattern_file(tmp_path):
    with pytest.raises(PatternError, match="does not exist"):
        read_pattern(tmp_path / "nothing.xy")


def test_measured_patterns_in_shared_data_all_read():
    root = shared_path("autoxrd_thinfilm_exp", "Experimental")
    files = sorted(root.rglob("*.xy"))
    assert len(files) == 88
    broken = []
    for path in files:
        try:
            p = read_pattern(path)
        except PatternError as exc:
            broken.append(str(exc))
            continue
        assert len(p.two_theta_deg) >= 50
    # four files of the SnPerovskite series are fixed-width with intensities run into 2θ ("14.11851260"): two are
    # split back unambiguously, two have lines that cannot be cut with confidence ("30.74128": 30.741 + 28 or 30.7412 + 8)
    assert len(broken) == 2
    assert all("separator missing" in message and "line " in message for message in broken)
    p = read_pattern(shared_path("mattergen_TaCr2O6_xrd", "xrd_measurement_TaCr2O6.dat"))
    assert p.two_theta_deg[0] == 5 and p.two_theta_deg[-1] == pytest.approx(90)


def test_structure_reader(tmp_path):
    s = read_structure(write(tmp_path, "nacl.cif", NACL_CIF))
    assert len(s) == 2  # the CIF lists only x,y,z, so its cell holds the two sites as written
    assert len(structure_from_text(NACL_CIF, "cif")) == 2
    with pytest.raises(StructureError, match="at most 1"):
        read_structure(write(tmp_path, "nacl2.cif", NACL_CIF), max_sites=1)
    with pytest.raises(StructureError, match="not a readable"):
        read_structure(write(tmp_path, "junk.cif", "data_x\n_cell_length_a 3\n"))
    with pytest.raises(StructureError, match="not a readable|no atoms"):
        structure_from_text(NACL_CIF.split("loop_\n_atom_site_label")[0], "cif")
    with pytest.raises(StructureError, match="does not exist"):
        read_structure(tmp_path / "none.cif")
    truncated = "NaCl\n1.0\n5.6 0 0\n0 5.6 0\n"  # stops before the third lattice vector
    with pytest.raises(StructureError, match="POSCAR_cut .* ends early .* three lattice vectors"):
        read_structure(write(tmp_path, "POSCAR_cut", truncated))
    with pytest.raises(StructureError, match="ends early"):
        structure_from_text(truncated, "poscar")


@pytest.mark.parametrize("text,expected", [
    ("Fe2O3", "Fe2O3"), ("Ca(OH)2", "Ca(OH)2"), (" NaCl ", "NaCl"),
    # hydrates and adducts as crystallographers write them
    ("CuSO4·5H2O", "CuSO9H10"), ("CuSO4*5H2O", "CuSO9H10"), ("Na2CO3 · 10H2O", "Na2CO13H20"),
    ("KAl(SO4)2·12H2O", "KAlS2O20H24"), ("CaSO4·0.5H2O", "Ca2S2O9H2"),
])
def test_formulas(text, expected):
    assert parse_formula(text).fractional_composition.almost_equals(parse_formula(expected).fractional_composition)


@pytest.mark.parametrize("text,message", [("", "empty"), ("Xx2O", "'Xx'"), ("Fe2O3)", "not a chemical formula"),
                                          ("123", "not a chemical formula|no atoms"), ("Q", "'Q'"),
                                          ("CuSO4·", "not a chemical formula"), ("·5H2O", "not a chemical formula")])
def test_bad_formulas_are_named(text, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula(text)


def test_powder_cifs_from_iucr_read_with_their_wavelength():
    import csv

    from tasks.readers import is_powder_cif, read_pdcif

    root = shared_path("iucr_rietveld_pxrd_cifs")
    with open(root / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        path = root / row["file"]
        assert is_powder_cif(path)
        given = float(row["wavelength_A"])
        p = read_pdcif(path, given)
        assert len(p.two_theta_deg) >= 500
        if "gw5052" not in row["file"]:  # these two files leave the wavelength as '?'
            assert read_pdcif(path).wavelength_angstrom == pytest.approx(given, abs=2e-3)


def test_a_structure_cif_is_not_a_powder_cif(tmp_path):
    from tasks.readers import is_powder_cif, read_pdcif

    path = write(tmp_path, "nacl.cif", NACL_CIF)
    assert not is_powder_cif(path)
    with pytest.raises(PatternError, match="no powder profile"):
        read_pdcif(path)


@pytest.fixture(scope="module")
def silicon_pattern():
    return read_pattern(EXAMPLES / "Si_diamond_CuKa.xy")


def _q_inv_angstrom(pattern, wavelength):
    return 4 * np.pi * np.sin(np.radians(pattern.two_theta_deg) / 2) / wavelength


@pytest.mark.parametrize("unit_line,scale", [("#         q_nm^-1             I ", 10.0), ("Q (1/A), Intensity", 1.0)])
def test_a_pyfai_style_q_file_reads_as_the_same_peaks_in_two_theta(silicon_pattern, tmp_path, unit_line, scale):
    lam = 0.72932  # a synchrotron wavelength, written in metres as pyFAI writes it
    q = _q_inv_angstrom(silicon_pattern, 1.54184) * scale  # the Cu pattern's Q, so the 2θ at Cu Kα must come back
    header = ["# == pyFAI calibration ==", "# Distance Sample to Detector: 0.2 m",
              f"# Wavelength: {lam * 1e-10:.11e} m", "# --> /data/si_0001.edf", unit_line]
    path = write(tmp_path, "si.xy", "\n".join(header + [f"{a:14.6e}  {b:14.6e}" for a, b in
                                                        zip(q, silicon_pattern.intensity)]) + "\n")
    pattern = read_pattern(path)
    assert pattern.wavelength_angstrom == pytest.approx(lam)
    np.testing.assert_allclose(pattern.q_inv_angstrom, q / scale, rtol=1e-5)
    at_cu = read_pattern(path, wavelength="CuKa")
    np.testing.assert_allclose(at_cu.two_theta_deg, silicon_pattern.two_theta_deg, atol=1e-4)


def test_d_spacings_named_in_the_header_are_put_in_rising_two_theta(silicon_pattern, tmp_path):
    d = 1.54184 / (2 * np.sin(np.radians(silicon_pattern.two_theta_deg) / 2))
    rows = [f"{a:.7f} {b:.4f}" for a, b in zip(d, silicon_pattern.intensity)]
    pattern = read_pattern(write(tmp_path, "si_d.xy", "d (Å)  intensity\n" + "\n".join(rows) + "\n"))
    np.testing.assert_allclose(pattern.two_theta_deg, silicon_pattern.two_theta_deg, atol=1e-4)
    np.testing.assert_allclose(pattern.intensity, silicon_pattern.intensity, atol=1e-3)
    with pytest.raises(PatternError, match="reaches d = .* give the measurement's wavelength, at most"):
        read_pattern(write(tmp_path, "short_d.xy", "d_A I\n" + "\n".join(
            f"{0.5 + i * 0.01:.3f} {i}" for i in range(100)) + "\n"))  # d < λ/2 at Cu Kα


def test_a_header_that_only_looks_like_an_axis_name_changes_nothing(silicon_pattern, tmp_path):
    rows = "\n".join(f"{a:.4f} {b:.4f}" for a, b in zip(silicon_pattern.two_theta_deg, silicon_pattern.intensity))
    for header in ("# D8 Advance, LynxEye", "# Quartz standard", "# Data collected 2026-11-30", "2-Theta  Counts"):
        pattern = read_pattern(write(tmp_path, "p.xy", header + "\n" + rows + "\n"))
        np.testing.assert_allclose(pattern.two_theta_deg, silicon_pattern.two_theta_deg, atol=1e-4)
    with pytest.raises(PatternError, match="'chi_deg', not 2θ, Q or d"):
        read_pattern(write(tmp_path, "chi.xy", "#  chi_deg  I\n" + rows + "\n"))


def multi_phase_cif(tmp_path: Path) -> Path:
    """A journal-style CIF: a publication block without sites, rock-salt NaCl and KCl, and a block whose sites
    cannot be read."""
    nacl = (EXAMPLES / "NaCl_rocksalt.cif").read_text()
    body = nacl[nacl.index("\n", nacl.index("data_")) + 1:]
    journal = "data_global\n_publ_section_title 'Two rock salts'\n_journal_name_full 'Test'\n\n"
    broken = "data_broken\n_cell_length_a 5.6\n_cell_length_b 5.6\n_cell_length_c 5.6\n" \
             "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\nNa 0 0\n"
    return write(tmp_path, "phases.cif", journal + "data_NaCl\n" + body + "\ndata_KCl\n"
                 + body.replace("5.64", "6.29").replace("Na", "K") + "\n" + broken)


def test_each_phase_of_a_multi_block_cif_is_its_own_structure(tmp_path):
    from tasks.readers import read_structures

    found = read_structures(multi_phase_cif(tmp_path))
    assert [name.rsplit("#", 1)[1] for name, _ in found] == ["NaCl", "KCl", "broken"]  # the journal block has no sites
    (_, nacl_structure), (_, kcl), (_, error) = found
    assert nacl_structure.lattice.a == pytest.approx(5.64) and kcl.lattice.a == pytest.approx(6.29)
    assert kcl.composition.reduced_formula == "KCl"
    assert isinstance(error, StructureError) and "phases.cif#broken" in str(error)
    single = read_structures(EXAMPLES / "NaCl_rocksalt.cif")
    assert [name for name, _ in single] == [str(EXAMPLES / "NaCl_rocksalt.cif")]
