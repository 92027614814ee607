"""Trainers: trainable WCRNNs and baselines (:mod:`trainers.models`); tasks and BPTT training with
recorded diagnostics come with later work. ``trainers`` depends on the lyapkit core, never the reverse.
"""
