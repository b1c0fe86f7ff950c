"""Action Genome data: the release reader, safe unpickling, the synthetic generator."""
