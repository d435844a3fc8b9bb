"""Package data of :mod:`robust_eval.references` (published numbers; see docs/ood_and_references.md)."""
