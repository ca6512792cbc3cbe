"""One HDF5 file per training run, readable with h5py alone; layout documented in docs/run-schema.md."""
from .reader import RunRecord, find_runs, read_run
from .schema import SCHEMA_NAME, SCHEMA_VERSION
from .writer import RunWriter

__all__ = ["SCHEMA_NAME", "SCHEMA_VERSION", "RunWriter", "RunRecord", "read_run", "find_runs"]
