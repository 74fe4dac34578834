"""Tasks: inputs + typed parameters -> files on disk. The CLI and the Snakemake rules call these."""
