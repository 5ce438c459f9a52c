"""The pipeline's stage commands, on top of the library: params.yaml and its schema, the notebook runner,
training and scoring entry points (torchrun), the summary, experiment comparison and profiles."""
