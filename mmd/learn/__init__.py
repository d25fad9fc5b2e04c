"""Learned models: datasets and labels from recordings, training, model files, inference glue."""
