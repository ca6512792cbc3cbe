"""``python -m ffneuro.cli``: the same as the ``ffneuro`` command (what ``torchrun -m`` needs)."""
from .main import main

main()
