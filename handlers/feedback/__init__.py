"""The feedback service: accepts scores and text about requests on ``o.feedback.<agent>``."""
