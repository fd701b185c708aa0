"""Training: the two-stage recipe (config.py), what trains (freeze.py), optimizer groups and schedule (optim.py),
single / DDP / FSDP2 strategies (distributed.py), atomic full-state checkpoints (checkpoint.py), the loop (loop.py).
Nothing heavy is imported here, so `cambrian --help` stays instant."""
