"""Action Genome scene-graph evaluation (Recall@K, mR@K, breakdowns)."""
