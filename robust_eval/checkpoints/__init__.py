"""Checkpoints: the formats robust-eval reads (recognisers and parsers), the data config
(input contract) of a loaded model, and this project's own file format."""
