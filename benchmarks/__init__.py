"""Side-by-side benchmarks against the named peers; ``make bench`` runs them all."""
