"""Trainers: trainable WCRNNs and baselines (:mod:`lyapkit.trainers.models`); tasks and BPTT training with
recorded diagnostics come with later work. ``trainers`` depends on the lyapkit core, never the reverse.
"""
