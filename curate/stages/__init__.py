"""Pipeline stages; their order is in curate.pipeline.STAGES."""
