"""A reviewer's tools: pack a study, reproduce it elsewhere, and compare two studies point by
point with an equivalence test (docs/reproduce.md)."""
