"""SLURM execution: a study becomes one `sbatch --array` job whose tasks each run one run
through its backend's runner; `status` and `collect` read the outcome back."""
