"""Run a trained network as a target runs it (``ffneuro simulate``): its weight and activation formats,
its neurons (rate-coded integrate-and-fire, sigma-delta graded spikes, or dense integer/float passes), and
NIR graphs with their own neuron dynamics. Pure functions for the math (quant, neurons), thin torch
wrappers around them (engine, nir_sim)."""
from .run import GROUP, SimulationResult, simulate_model, simulate_run_file, store_simulation
from .targets import TargetNumerics, numerics_for

__all__ = ["GROUP", "SimulationResult", "TargetNumerics", "numerics_for", "simulate_model", "simulate_run_file",
           "store_simulation"]
