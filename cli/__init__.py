"""The ``ffneuro`` command line (installed as ``ffneuro.cli``)."""
