"""One HDF5 file per training run, readable with h5py alone; layout documented in docs/run-schema.md."""
from .lock import Holder, holder_of
from .reader import RunRecord, find_runs, read_run
from .schema import SCHEMA_NAME, SCHEMA_VERSION
from .writer import RunWriter, write_back

__all__ = ["SCHEMA_NAME", "SCHEMA_VERSION", "Holder", "RunWriter", "RunRecord", "find_runs", "holder_of", "read_run",
           "write_back"]
