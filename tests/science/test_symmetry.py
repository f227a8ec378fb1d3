"""spglib labels of structures: named structures, real test structures, tolerance sweep, errors."""

import csv
import random

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from tasks.crystallography import space_group_type
from tasks.symmetry import SymmetryError, symmetry_labels, tolerance_sweep
from tests.conftest import shared_path


def rocksalt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_rocksalt_labels():
    labels = symmetry_labels(rocksalt())
    assert labels.space_group_number == 225
    assert labels.space_group_symbol == "Fm-3m"
    assert labels.crystal_system == "cubic"
    assert labels.bravais_lattice == "cF"
    assert labels.laue_class == "m-3m"
    assert labels.point_group == "m-3m"
    assert set(labels.wyckoff_letters) == {"a", "b"}
    assert "Fm-3m" in labels.extinction_group_label


@pytest.mark.parametrize("number,system,bravais", [(14, "monoclinic", "mP"), (62, "orthorhombic", "oP"),
                                                     (166, "trigonal", "hR"), (194, "hexagonal", "hP"),
                                                     (139, "tetragonal", "tI"), (12, "monoclinic", "mC")])
def test_space_group_type_table(number, system, bravais):
    sg = space_group_type(number)
    assert (sg.crystal_system, sg.bravais_lattice) == (system, bravais)


def test_tolerance_sweep_reveals_a_small_distortion():
    s = rocksalt()
    s.translate_sites([0], [0.002, 0, 0], frac_coords=True)  # 0.011 Å off the ideal site
    sweep = tolerance_sweep(s)
    assert sweep[0]["space_group_number"] == 225  # symprec 0.1 Å still sees rock salt
    assert sweep[-1]["space_group_number"] != 225  # 1e-5 Å sees the distortion
    assert [row["symprec"] for row in sweep] == sorted((row["symprec"] for row in sweep), reverse=True)


def test_overlapping_atoms_give_a_clear_error():
    s = Structure(Lattice.cubic(3.0), ["Fe", "Fe"], [[0, 0, 0], [0, 0, 0]])
    with pytest.raises(SymmetryError, match="overlap|no symmetry"):
        symmetry_labels(s, symprec=1e-5)


def test_labels_reproduce_spglib_test_structures():
    root = shared_path("spglib_test_structures")
    with (root / "labels.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["folder"] not in ("layer", "virtual_structure")]
    random.Random(0).shuffle(rows)
    checked = 0
    for row in rows[:60]:
        s = Structure.from_file(root / row["file"])
        labels = symmetry_labels(s, symprec=float(row["symprec_used"]))
        assert labels.space_group_number == int(row["spg_number_from_filename"]), row["file"]
        assert labels.crystal_system == space_group_type(labels.space_group_number).crystal_system
        checked += 1
    assert checked == 60


def test_symprec_changes_nothing_for_an_ideal_crystal():
    s = rocksalt()
    numbers = {row["space_group_number"] for row in tolerance_sweep(s)}
    assert numbers == {225}
    assert np.isclose(symmetry_labels(s).symprec, 0.1)


def test_a_disordered_solid_solution_has_the_symmetry_of_its_average_structure():
    from pymatgen.core import Lattice, Structure

    from tasks.symmetry import disordered_site_count

    # FeCo: the same 50/50 occupancy on both sites of the cube, written in either order, is bcc (A2, Im-3m) ...
    disordered = Structure(Lattice.cubic(2.86), [{"Fe": 0.5, "Co": 0.5}, {"Co": 0.5, "Fe": 0.5}],
                           [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert symmetry_labels(disordered).space_group_symbol == "Im-3m"
    assert disordered_site_count(disordered) == 2
    # ... ordered on the two sites it is CsCl-type (B2, Pm-3m), and so is a cube whose corner is only half Fe
    ordered = Structure(Lattice.cubic(2.86), ["Fe", "Co"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert symmetry_labels(ordered).space_group_symbol == "Pm-3m" and disordered_site_count(ordered) == 0
    uneven = Structure(Lattice.cubic(2.86), [{"Fe": 0.5, "Co": 0.5}, {"Fe": 0.9, "Co": 0.1}],
                       [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert symmetry_labels(uneven).space_group_symbol == "Pm-3m"
    vacant = Structure(Lattice.cubic(2.86), [{"Fe": 0.5}, "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert symmetry_labels(vacant).space_group_symbol == "Pm-3m"
