"""The pipeline: one canonical request in, the spoken answer's event stream out."""
