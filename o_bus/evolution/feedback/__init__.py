"""Feedback: a score and optional text about one request, recorded and read by fitness."""
