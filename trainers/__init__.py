"""Trainers: trainable WCRNNs and baselines, tasks, and BPTT with recorded diagnostics.

Filled by later work; the package exists so that models can depend on the lyapkit core only.
"""
