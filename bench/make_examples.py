"""Writes the example inputs shipped in tasks/examples/ (textbook structures, our own simulated patterns).

    python bench/make_examples.py
"""

from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from tasks.augment import MeasuredLikeAugmenter
from tasks.xrd import PowderXRDSimulator

OUT = Path(__file__).resolve().parents[1] / "tasks" / "examples"

STRUCTURES = {
    # textbook structures (lattice parameters from standard references)
    "NaCl_rocksalt": Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.640), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    # pymatgen's Fd-3m is origin choice 1, where diamond's 8a site is at the origin ((1/8, 1/8, 1/8) there is 16c:
    # twice the atoms, no 220 line)
    "Si_diamond": Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]]),
    "TiO2_rutile": Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"],
                                             [[0, 0, 0], [0.3048, 0.3048, 0]]),
    "ZnO_wurtzite": Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(3.250, 5.207), ["Zn", "O"],
                                              [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    CifWriter(STRUCTURES["NaCl_rocksalt"], symprec=0.1).write_file(OUT / "NaCl_rocksalt.cif")
    STRUCTURES["TiO2_rutile"].to(filename=str(OUT / "POSCAR_TiO2_rutile"), fmt="poscar")
    augmenter = MeasuredLikeAugmenter()
    for i, name in enumerate(("Si_diamond", "TiO2_rutile", "ZnO_wurtzite")):
        rng = np.random.default_rng(100 + i)
        refl = PowderXRDSimulator(two_theta_range_deg=(0, 150)).reflections(STRUCTURES[name])
        sample = augmenter.sample(rng, wavelength="CuKa")
        sample = type(sample)(**dict(sample.__dict__, two_theta_range_deg=(10.0, 90.0), step_deg=0.02,
                                     texture_axis=None, impurity_positions_deg=np.zeros(0),
                                     impurity_fractions=np.zeros(0)))
        pattern = augmenter.render(refl, sample, rng)
        header = (f"# simulated measured-like powder pattern of {name} (ml-space-group bench/make_examples.py)\n"
                  f"# wavelength = {pattern.wavelength_angstrom:.5f} A\n# 2theta_deg intensity_counts\n")
        body = "\n".join(f"{x:.3f} {y:.1f}" for x, y in zip(pattern.two_theta_deg, pattern.intensity))
        (OUT / f"{name}_CuKa.xy").write_text(header + body + "\n")


if __name__ == "__main__":
    main()
