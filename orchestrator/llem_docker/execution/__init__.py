"""How a plan runs: the study loop, run preparation, outcome classification, resume,
progress, the image handshake, the runners and the SLURM executor."""
