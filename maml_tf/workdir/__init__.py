"""The run directory (workdir): its atomic small files, lock, interrupts, identity, checkpoints (with the index rebuilt from the files), model files and the run store."""
