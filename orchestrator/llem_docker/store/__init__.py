"""What a study leaves on disk: the manifest (and its lock), the StudyResult, collection
from a finished SLURM job, loading results back, and the published JSON schemas."""
