"""Shipped hardware target profiles (one TOML file per target); loaded by ffneuro.profiler.hardware."""
