"""Readers and writers for event files made outside assay.

- :mod:`assay.io.lhe`: Les Houches Event files (parton level, with MadGraph reweighting weights).
- :mod:`assay.io.delphes`: Delphes ROOT output (reconstructed leptons, b-jets, MET); needs uproot.
"""

from assay.io.delphes import DelphesEvents, read_delphes
from assay.io.lhe import LHEError, LHEEvents, LHEInit, read_lhe, write_lhe

__all__ = ["DelphesEvents", "LHEError", "LHEEvents", "LHEInit", "read_delphes", "read_lhe", "write_lhe"]
